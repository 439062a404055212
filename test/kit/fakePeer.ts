/**
 * Test kit: a fake QMP peer on a UNIX socket, served by `@effect/platform`'s `SocketServer`, for
 * what real QEMU cannot be made to do (malformed JSON, stalled replies, foreign ids, floods).
 * Each test scripts what the peer says. With `strict: true` the peer first refuses, in QEMU's
 * words, what QEMU's monitor refuses (a malformed request, any command before
 * `qmp_capabilities`, a second `qmp_capabilities`, a capability it does not know), so that a
 * test of a QEMU-like peer cannot pass on behaviour real QEMU would reject.
 */
import type { Socket } from "@effect/platform"
import { NodeSocket, NodeSocketServer } from "@effect/platform-node"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Net from "node:net"
import * as Path from "node:path"
import { tempDir } from "./qemu.js"

/** The capabilities the greeting offers, as QEMU 7.2 on a monitor with its own I/O thread. */
export const offeredCapabilities: ReadonlyArray<string> = ["oob"]

export const greetingLine = JSON.stringify({
  QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: "fake" }, capabilities: offeredCapabilities }
}) + "\r\n"

/** A request as the client sent it (strict mode has checked its shape before a script sees it). */
export interface PeerRequest {
  readonly execute?: string
  readonly "exec-oob"?: string
  readonly arguments?: any
  readonly id?: unknown
}

export interface PeerContext {
  /** The connection itself, for scripts that end it, destroy it or write with backpressure. */
  readonly socket: Net.Socket
  /** Sends a JSON value followed by CRLF. */
  readonly send: (value: unknown) => void
  /** Sends raw text or bytes. */
  readonly sendRaw: (data: string | Uint8Array) => void
}

export interface PeerScript {
  /** Sends the standard greeting on connect. Default: true. */
  readonly greet?: boolean
  /** Called once on connect, after the greeting. */
  readonly onConnect?: (peer: PeerContext) => void
  /**
   * Called for each request line. Default: answers `qmp_capabilities` with `{}` and every other
   * command with `{"return": {"echo": <command>}}`.
   */
  readonly onRequest?: (request: PeerRequest, peer: PeerContext) => void
  /**
   * Refuses what QEMU 7.2's monitor refuses, with QEMU's error class and text, before
   * `onRequest` sees the request; what it accepts (the first valid `qmp_capabilities`
   * included) goes on to `onRequest`, which answers it. Default: false, every request goes to
   * `onRequest`.
   */
  readonly strict?: boolean
}

export const answerDefault = (request: PeerRequest, peer: PeerContext) => {
  if (request.execute === "qmp_capabilities") peer.send({ return: {}, id: request.id })
  else peer.send({ return: { echo: request.execute }, id: request.id })
}

/** The `error` member of a QMP error reply. */
export interface QmpRefusal {
  readonly class: "GenericError" | "CommandNotFound"
  readonly desc: string
}

/** Where a strict peer's connection stands in QEMU's negotiation. */
export interface Negotiation {
  negotiated: boolean
  oob: boolean
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const generic = (desc: string): QmpRefusal => ({ class: "GenericError", desc })

// QEMU's qmp_dispatch_check_obj (qapi/qmp-dispatch.c): the request's own members, in order.
const envelopeRefusal = (request: unknown, state: Negotiation): QmpRefusal | undefined => {
  if (!isObject(request)) return generic("QMP input must be a JSON object")
  let execKey: string | undefined
  for (const [key, value] of Object.entries(request)) {
    if (key === "execute" || (key === "exec-oob" && state.oob)) {
      if (typeof value !== "string") return generic(`QMP input member '${key}' must be a string`)
      if (execKey !== undefined) return generic(`QMP input member '${key}' clashes with '${execKey}'`)
      execKey = key
    } else if (key === "arguments") {
      if (!isObject(value)) return generic("QMP input member 'arguments' must be an object")
    } else if (key !== "id") {
      return generic(`QMP input member '${key}' is unexpected`)
    }
  }
  return execKey === undefined ? generic("QMP input lacks member 'execute'") : undefined
}

// QEMU's qmp_qmp_capabilities and its generated argument visitor (monitor/qmp-cmds-control.c).
const capabilitiesRefusal = (args: Record<string, unknown>): QmpRefusal | undefined => {
  const enable = args.enable
  if (enable !== undefined) {
    if (!Array.isArray(enable)) return generic("Invalid parameter type for 'enable', expected: array")
    for (const [index, name] of enable.entries()) {
      if (typeof name !== "string") return generic(`Invalid parameter type for 'enable[${index}]', expected: string`)
      // QEMU names the list element 'null' here: its enum visitor has no name for it.
      if (!offeredCapabilities.includes(name)) return generic(`Parameter 'null' does not accept value '${name}'`)
    }
  }
  const unexpected = Object.keys(args).find((key) => key !== "enable")
  return unexpected === undefined ? undefined : generic(`Parameter '${unexpected}' is unexpected`)
}

/**
 * What QEMU's monitor answers instead of running `request`, or `undefined` when QEMU would run
 * it. Accepting a `qmp_capabilities` completes the negotiation in `state`.
 */
export const qemuRefusal = (request: unknown, state: Negotiation): QmpRefusal | undefined => {
  const malformed = envelopeRefusal(request, state)
  if (malformed !== undefined) return malformed
  const { arguments: args = {}, execute } = request as { execute?: string; arguments?: Record<string, unknown> }
  if (!state.negotiated) {
    if (execute !== "qmp_capabilities") {
      return { class: "CommandNotFound", desc: "Expecting capabilities negotiation with 'qmp_capabilities'" }
    }
    const refused = capabilitiesRefusal(args)
    if (refused !== undefined) return refused
    state.negotiated = true
    state.oob = Array.isArray(args.enable) && args.enable.includes("oob")
    return undefined
  }
  if (execute === "qmp_capabilities") {
    return { class: "CommandNotFound", desc: "Capabilities negotiation is already complete, command ignored" }
  }
  return undefined
}

/** Calls `onLine` with each non-empty line of a byte stream (UTF-8 split across chunks included). */
export const lineSplitter = (onLine: (line: string) => void) => {
  const decoder = new TextDecoder()
  let buffered = ""
  return (chunk: Uint8Array) => {
    buffered += decoder.decode(chunk, { stream: true })
    let newline: number
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline).trim()
      buffered = buffered.slice(newline + 1)
      if (line.length > 0) onLine(line)
    }
  }
}

const serve = (socket: Socket.Socket, script: PeerScript, open: Set<Net.Socket>) =>
  Effect.gen(function*() {
    // The connection under the platform's Socket, which NodeSocketServer provides to each handler.
    const connection = Option.getOrThrow(yield* Effect.serviceOption(NodeSocket.NetSocket))
    open.add(connection)
    connection.once("close", () => open.delete(connection))
    const write = yield* socket.writer
    // Each write runs at once (a fiber starts synchronously up to its first wait), so writes keep
    // the order of the calls and of what a script does to `socket` between them; a write left
    // waiting when the connection ends is interrupted with the connection's scope.
    const runFork = yield* FiberSet.makeRuntime<never, void, never>()
    const sendRaw = (data: string | Uint8Array) => {
      if (!connection.destroyed) runFork(Effect.ignore(write(data)))
    }
    const peer: PeerContext = { socket: connection, send: (value) => sendRaw(JSON.stringify(value) + "\r\n"), sendRaw }
    const state: Negotiation = { negotiated: false, oob: false }
    const onRequest = script.onRequest ?? answerDefault
    const onLine = (line: string) => {
      const request = JSON.parse(line)
      const refusal = script.strict === true ? qemuRefusal(request, state) : undefined
      if (refusal === undefined) return onRequest(request, peer)
      peer.send(isObject(request) && "id" in request ? { id: request.id, error: refusal } : { error: refusal })
    }
    yield* socket.run(lineSplitter(onLine), {
      onOpen: Effect.sync(() => {
        if (script.greet !== false) sendRaw(greetingLine)
        script.onConnect?.(peer)
      })
    })
  }).pipe(Effect.scoped, Effect.ignore)

/**
 * Starts a scripted peer; yields the socket path. When the scope closes, open connections are
 * cut, the server is closed and its directory removed.
 */
export const fakePeer = (script: PeerScript): Effect.Effect<string, never, Scope.Scope> =>
  Effect.gen(function*() {
    const directory = yield* tempDir("effect-qemu-peer-")
    const path = Path.join(directory, "qmp.sock")
    const server = yield* NodeSocketServer.make({ path }).pipe(Effect.orDie)
    const open = new Set<Net.Socket>()
    yield* server.run((socket) => serve(socket, script, open)).pipe(Effect.forkScoped)
    // Cut connections a client left open: closing the server waits for every one of them.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const connection of open) connection.destroy()
      })
    )
    return path
  })
