/**
 * `copyIn` and `copyOut` on the guest agent: a file moved in chunks with `guest-file-write` /
 * `guest-file-read`, hashed on the host as it goes and checked against the guest's `sha256sum`.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import type { CallOptions, CopyOptions, CopyResult, GuestAgentService } from "../GuestAgent.js"
import { GuestAgentArgumentError, GuestAgentProtocolError, GuestCopyMismatch } from "../GuestAgentError.js"
import type { AgentCall } from "./agentCall.js"

/** The agent's limit on one `guest-file-read`. */
const maxReadBytes = 48 * 1024 * 1024

const defaultChunkBytes = 4 * 1024 * 1024

const chunkSize = (input: number | undefined) =>
  input === undefined
    ? Effect.succeed(defaultChunkBytes)
    : Number.isSafeInteger(input) && input > 0 && input <= maxReadBytes
    ? Effect.succeed(input)
    : Effect.fail(
      new GuestAgentArgumentError({ field: "chunkBytes", detail: `expected an integer from 1 to ${maxReadBytes}` })
    )

const hostError = (field: string, path: string) => (cause: unknown) =>
  new GuestAgentArgumentError({
    field,
    detail: `${path}: ${cause instanceof Error ? cause.message : String(cause)}`,
    cause
  })

/** A host file descriptor for the scope. */
const hostFile = (path: string, flags: string, field: string) =>
  Effect.acquireRelease(
    Effect.try({ try: () => Fs.openSync(path, flags, 0o644), catch: hostError(field, path) }),
    (fd) => Effect.sync(() => Fs.closeSync(fd))
  )

/** A guest file handle for the scope; `close` closes it and reports how (the release then does nothing). */
const guestFile = (agent: GuestAgentService, path: string, mode: string, options: CallOptions) =>
  Effect.gen(function*() {
    let open = true
    const handle = yield* Effect.acquireRelease(
      agent.fileOpen(path, mode, options),
      (handle) => open ? Effect.ignore(agent.fileClose(handle, options)) : Effect.void
    )
    const close = Effect.suspend(() => {
      open = false
      return agent.fileClose(handle, options)
    })
    return { handle, close }
  })

/** The guest's SHA-256 of `path`, by its `sha256sum`. */
const guestSha256 = (agent: GuestAgentService, path: string) =>
  Effect.flatMap(agent.exec(["sha256sum", path], { check: true }), ({ stdout }) => {
    const match = /^([0-9a-f]{64})\s/.exec(stdout)
    return match !== null ? Effect.succeed(match[1]) : Effect.fail(
      new GuestAgentProtocolError({
        name: agent.name,
        command: "sha256sum",
        detail: `no hash in ${JSON.stringify(stdout.slice(0, 100))}`
      })
    )
  })

const verified = (
  agent: GuestAgentService,
  paths: { readonly direction: "in" | "out"; readonly hostPath: string; readonly guestPath: string },
  result: CopyResult,
  options: CopyOptions | undefined
) =>
  options?.verify === false ?
    Effect.succeed(result) :
    Effect.flatMap(guestSha256(agent, paths.guestPath), (guest) =>
      guest === result.sha256
        ? Effect.succeed(result)
        : Effect.fail(new GuestCopyMismatch({ ...paths, hostSha256: result.sha256, guestSha256: guest })))

/** Writes all of `data` at the handle's position (the agent may take less than it was given). */
const writeAll = (agent: GuestAgentService, handle: number, data: Uint8Array, options: CallOptions) =>
  Effect.gen(function*() {
    for (let offset = 0; offset < data.length;) {
      const count = yield* agent.fileWrite(handle, data.subarray(offset), options)
      if (!(count > 0 && count <= data.length - offset)) {
        return yield* new GuestAgentProtocolError({
          name: agent.name,
          command: "guest-file-write",
          detail: `wrote ${count} of ${data.length - offset} bytes`
        })
      }
      offset += count
    }
  })

/** Copies a host file into the guest (see `GuestAgentService.copyIn`). */
export const copyIn = (
  agent: GuestAgentService,
  core: AgentCall,
  hostPath: string,
  guestPath: string,
  options?: CopyOptions
): Effect.Effect<CopyResult, Effect.Effect.Error<ReturnType<GuestAgentService["copyIn"]>>> =>
  Effect.gen(function*() {
    const chunk = yield* chunkSize(options?.chunkBytes)
    const callOptions = { timeout: yield* core.timeout(options?.timeout) }
    const fd = yield* hostFile(hostPath, "r", "hostPath")
    const file = yield* guestFile(agent, guestPath, "w", callOptions)
    const hash = Crypto.createHash("sha256")
    const buffer = Buffer.allocUnsafe(chunk)
    let bytes = 0
    for (;;) {
      const read = yield* Effect.try({
        try: () => Fs.readSync(fd, buffer, 0, chunk, null),
        catch: hostError("hostPath", hostPath)
      })
      if (read === 0) break
      hash.update(buffer.subarray(0, read))
      yield* writeAll(agent, file.handle, buffer.subarray(0, read), callOptions)
      bytes += read
    }
    yield* file.close
    return { bytes, sha256: hash.digest("hex") }
  }).pipe(
    Effect.scoped,
    Effect.flatMap((result) => verified(agent, { direction: "in", hostPath, guestPath }, result, options)),
    Effect.withSpan("GuestAgent.copyIn", { attributes: { "guest_agent.path": guestPath } })
  )

/** The host side of `copyOut`: a temp file beside `hostPath`, renamed over it on success, removed otherwise. */
const hostTarget = (hostPath: string) => {
  const temporary = `${hostPath}.${process.pid}-${Date.now().toString(36)}.part`
  return Effect.acquireRelease(
    Effect.map(hostFile(temporary, "wx", "hostPath"), (fd) => ({ fd, temporary })),
    (_, exit) => Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => Fs.rmSync(temporary, { force: true }))
  )
}

/** Copies a guest file to the host (see `GuestAgentService.copyOut`). */
export const copyOut = (
  agent: GuestAgentService,
  core: AgentCall,
  guestPath: string,
  hostPath: string,
  options?: CopyOptions
): Effect.Effect<CopyResult, Effect.Effect.Error<ReturnType<GuestAgentService["copyOut"]>>> =>
  Effect.gen(function*() {
    const chunk = yield* chunkSize(options?.chunkBytes)
    const callOptions = { timeout: yield* core.timeout(options?.timeout) }
    const target = yield* hostTarget(hostPath)
    const file = yield* guestFile(agent, guestPath, "r", callOptions)
    const hash = Crypto.createHash("sha256")
    let bytes = 0
    for (let eof = false; !eof;) {
      const read = yield* agent.fileRead(file.handle, chunk, callOptions)
      eof = read.eof || read.data.length === 0
      hash.update(read.data)
      yield* Effect.try({ try: () => Fs.writeSync(target.fd, read.data), catch: hostError("hostPath", hostPath) })
      bytes += read.data.length
    }
    yield* file.close
    const result = { bytes, sha256: hash.digest("hex") }
    const checked = yield* verified(agent, { direction: "out", hostPath, guestPath }, result, options)
    yield* Effect.try({ try: () => Fs.renameSync(target.temporary, hostPath), catch: hostError("hostPath", hostPath) })
    return checked
  }).pipe(Effect.scoped, Effect.withSpan("GuestAgent.copyOut", { attributes: { "guest_agent.path": guestPath } }))
