/**
 * A client for QEMU's guest agent (`qemu-ga`) over the virtio-serial channel a machine sets up with
 * `guestAgent: true`: typed commands (ping, info, OS info, host name, network interfaces, exec,
 * files, fsfreeze, shutdown), `exec` that waits for a command to end and returns its exit code and
 * output, and `copyIn`/`copyOut` of files of any size, checked by SHA-256.
 *
 * The agent speaks QAPI JSON but is not QMP: no greeting, no capabilities, and a stream that may
 * hold stale data (from a previous client, or a reply that came after its request timed out). The
 * client brings the stream in step with `guest-sync-delimited` before its first command and after
 * any command that timed out; until the agent answers that (it may start seconds after the VM),
 * it retries within the command's timeout, then fails with `GuestAgentUnavailable`. Commands run
 * one at a time, as the agent runs them.
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { Duplex } from "node:stream"
import {
  GuestAgentArgumentError,
  type GuestAgentCallError,
  GuestAgentUnavailable,
  type GuestCopyMismatch,
  type GuestExecFailed,
  type GuestExecTimeout
} from "./GuestAgentError.js"
import { type AgentCall, makeCall } from "./internal/agentCall.js"
import * as Channel from "./internal/agentChannel.js"
import { execCommand } from "./internal/agentExec.js"
import { copyIn, copyOut } from "./internal/agentFiles.js"
import * as Timer from "./internal/timer.js"

/**
 * Options of one agent command. `timeout` bounds the whole command, the wait for the agent to
 * answer `guest-sync-delimited` included; default: the client's `commandTimeout`.
 *
 * @since 0.2.0
 * @category models
 */
export interface CallOptions {
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * What `guest-info` returns: the agent's version and its commands.
 *
 * @since 0.2.0
 * @category models
 */
export const GuestAgentInfo = Schema.Struct({
  version: Schema.String,
  supported_commands: Schema.Array(
    Schema.Struct({ name: Schema.String, enabled: Schema.Boolean, "success-response": Schema.Boolean })
  )
})

/**
 * @since 0.2.0
 * @category models
 */
export type GuestAgentInfo = typeof GuestAgentInfo.Type

/**
 * What `guest-get-osinfo` returns (uname and os-release fields; each may be missing).
 *
 * @since 0.2.0
 * @category models
 */
export const GuestOsInfo = Schema.Struct({
  "kernel-release": Schema.optional(Schema.String),
  "kernel-version": Schema.optional(Schema.String),
  machine: Schema.optional(Schema.String),
  id: Schema.optional(Schema.String),
  name: Schema.optional(Schema.String),
  "pretty-name": Schema.optional(Schema.String),
  version: Schema.optional(Schema.String),
  "version-id": Schema.optional(Schema.String),
  variant: Schema.optional(Schema.String),
  "variant-id": Schema.optional(Schema.String)
})

/**
 * @since 0.2.0
 * @category models
 */
export type GuestOsInfo = typeof GuestOsInfo.Type

/** QAPI's uint64 counters: a `bigint` beyond `Number`'s safe range. */
const Counter = Schema.Union(Schema.Number, Schema.BigIntFromSelf)

/**
 * One entry of `guest-network-get-interfaces`.
 *
 * @since 0.2.0
 * @category models
 */
export const GuestNetworkInterface = Schema.Struct({
  name: Schema.String,
  "hardware-address": Schema.optional(Schema.String),
  "ip-addresses": Schema.optional(Schema.Array(Schema.Struct({
    "ip-address": Schema.String,
    "ip-address-type": Schema.Literal("ipv4", "ipv6"),
    prefix: Schema.Number
  }))),
  statistics: Schema.optional(Schema.Struct({
    "rx-bytes": Counter,
    "rx-packets": Counter,
    "rx-errs": Counter,
    "rx-dropped": Counter,
    "tx-bytes": Counter,
    "tx-packets": Counter,
    "tx-errs": Counter,
    "tx-dropped": Counter
  }))
})

/**
 * @since 0.2.0
 * @category models
 */
export type GuestNetworkInterface = typeof GuestNetworkInterface.Type

/**
 * What `guest-exec-status` returns: whether the process exited and, once it has, its exit code or
 * signal and its output (base64, as the agent sends it).
 *
 * @since 0.2.0
 * @category models
 */
export const GuestExecStatus = Schema.Struct({
  exited: Schema.Boolean,
  exitcode: Schema.optional(Schema.Number),
  signal: Schema.optional(Schema.Number),
  "out-data": Schema.optional(Schema.String),
  "err-data": Schema.optional(Schema.String),
  "out-truncated": Schema.optional(Schema.Boolean),
  "err-truncated": Schema.optional(Schema.Boolean)
})

/**
 * @since 0.2.0
 * @category models
 */
export type GuestExecStatus = typeof GuestExecStatus.Type

/**
 * Options of `execStart` (and so of `exec`). `env` replaces the process's whole environment
 * (`KEY=value` strings or a record); `input` is written to its stdin, which is then closed.
 *
 * @since 0.2.0
 * @category models
 */
export interface ExecStartOptions extends CallOptions {
  readonly input?: string | Uint8Array | undefined
  readonly env?: ReadonlyArray<string> | Readonly<Record<string, string>> | undefined
}

/**
 * Options of `exec`: `timeout` bounds the run of the command (default 30 seconds), `check: true`
 * fails with `GuestExecFailed` when it exits non-zero or is killed.
 *
 * @since 0.2.0
 * @category models
 */
export interface ExecOptions extends ExecStartOptions {
  readonly check?: boolean | undefined
}

/**
 * How a command run by `exec` ended: its exit code (`null` when a signal killed it), the signal,
 * its output decoded as UTF-8, and whether the agent cut the output short (it keeps 16 MiB).
 *
 * @since 0.2.0
 * @category models
 */
export interface ExecResult {
  readonly exitCode: number | null
  readonly signal: number | null
  readonly stdout: string
  readonly stderr: string
  readonly truncated: boolean
}

/**
 * Options of `copyIn` and `copyOut`: the chunk each agent command carries (default 4 MiB, at most
 * the agent's 48 MiB), the timeout of each agent command, and whether to check the SHA-256 of the
 * copy against the original with the guest's `sha256sum` (default true).
 *
 * @since 0.2.0
 * @category models
 */
export interface CopyOptions extends CallOptions {
  readonly chunkBytes?: number | undefined
  readonly verify?: boolean | undefined
}

/**
 * What a copy moved: its size and SHA-256 (hex).
 *
 * @since 0.2.0
 * @category models
 */
export interface CopyResult {
  readonly bytes: number
  readonly sha256: string
}

/**
 * Options of `shutdown`: the mode (default `"powerdown"`) and how long to wait for an error reply
 * (the agent sends none when the shutdown starts).
 *
 * @since 0.2.0
 * @category models
 */
export interface ShutdownOptions extends CallOptions {
  readonly mode?: "powerdown" | "halt" | "reboot" | undefined
  readonly replyWait?: Duration.DurationInput | undefined
}

/**
 * What `exec`, `copyIn` and `copyOut` can fail with besides the agent's own errors.
 *
 * @since 0.2.0
 * @category errors
 */
export type GuestRunError = GuestAgentCallError | GuestExecFailed | GuestExecTimeout

/**
 * A client of one guest agent.
 *
 * @since 0.2.0
 * @category models
 */
export interface GuestAgentService {
  readonly name: string
  /** Waits until the agent answers `guest-sync-delimited` (retrying), e.g. right after boot. */
  readonly waitReady: (options?: CallOptions) => Effect.Effect<void, GuestAgentCallError>
  /** Any agent command by name; the reply's `return` member, undecoded. */
  readonly execute: (
    command: string,
    args?: object | undefined,
    options?: CallOptions
  ) => Effect.Effect<unknown, GuestAgentCallError>
  /** `guest-ping`. */
  readonly ping: (options?: CallOptions) => Effect.Effect<void, GuestAgentCallError>
  /** `guest-info`. */
  readonly info: (options?: CallOptions) => Effect.Effect<GuestAgentInfo, GuestAgentCallError>
  /** `guest-get-osinfo`. */
  readonly osInfo: (options?: CallOptions) => Effect.Effect<GuestOsInfo, GuestAgentCallError>
  /** `guest-get-host-name`. */
  readonly hostName: (options?: CallOptions) => Effect.Effect<string, GuestAgentCallError>
  /** `guest-network-get-interfaces`. */
  readonly networkInterfaces: (
    options?: CallOptions
  ) => Effect.Effect<ReadonlyArray<GuestNetworkInterface>, GuestAgentCallError>
  /** `guest-exec` with output captured: starts `argv` and returns the guest pid. */
  readonly execStart: (
    argv: ReadonlyArray<string>,
    options?: ExecStartOptions
  ) => Effect.Effect<number, GuestAgentCallError>
  /** `guest-exec-status`; once it reports `exited`, the agent forgets the process. */
  readonly execStatus: (pid: number, options?: CallOptions) => Effect.Effect<GuestExecStatus, GuestAgentCallError>
  /**
   * Runs `argv` in the guest and waits for it to end (polling `guest-exec-status` with a growing
   * pause, up to 200 ms). A command still running at `timeout` is killed with `kill -KILL` through
   * the agent (which has no command of its own to stop it) and fails with `GuestExecTimeout`.
   */
  readonly exec: (argv: ReadonlyArray<string>, options?: ExecOptions) => Effect.Effect<ExecResult, GuestRunError>
  /** `guest-file-open` (mode as `fopen`'s, default `"r"`): a handle. */
  readonly fileOpen: (path: string, mode?: string, options?: CallOptions) => Effect.Effect<number, GuestAgentCallError>
  /** `guest-file-read` of up to `count` bytes (default 4 KiB, at most 48 MiB). */
  readonly fileRead: (
    handle: number,
    count?: number,
    options?: CallOptions
  ) => Effect.Effect<{ readonly data: Uint8Array; readonly eof: boolean }, GuestAgentCallError>
  /** `guest-file-write`: the number of bytes written. */
  readonly fileWrite: (
    handle: number,
    data: Uint8Array,
    options?: CallOptions
  ) => Effect.Effect<number, GuestAgentCallError>
  /** `guest-file-close`. */
  readonly fileClose: (handle: number, options?: CallOptions) => Effect.Effect<void, GuestAgentCallError>
  /** `guest-fsfreeze-status`. */
  readonly fsfreezeStatus: (options?: CallOptions) => Effect.Effect<"thawed" | "frozen", GuestAgentCallError>
  /** `guest-fsfreeze-freeze` (or `-freeze-list` with mount points): how many file systems are frozen. */
  readonly fsfreezeFreeze: (
    options?: CallOptions & { readonly mountpoints?: ReadonlyArray<string> }
  ) => Effect.Effect<number, GuestAgentCallError>
  /** `guest-fsfreeze-thaw`: how many file systems were thawed. */
  readonly fsfreezeThaw: (options?: CallOptions) => Effect.Effect<number, GuestAgentCallError>
  /**
   * `guest-shutdown`. The agent does not reply when the shutdown starts: no error reply within
   * `replyWait` (default 2 seconds), or the channel closing as QEMU exits, is success.
   */
  readonly shutdown: (options?: ShutdownOptions) => Effect.Effect<void, GuestAgentCallError>
  /** Copies a host file into the guest in chunks, then checks its SHA-256 in the guest. */
  readonly copyIn: (
    hostPath: string,
    guestPath: string,
    options?: CopyOptions
  ) => Effect.Effect<CopyResult, GuestRunError | GuestCopyMismatch>
  /** Copies a guest file to the host in chunks (through a temp file renamed at the end), checked likewise. */
  readonly copyOut: (
    guestPath: string,
    hostPath: string,
    options?: CopyOptions
  ) => Effect.Effect<CopyResult, GuestRunError | GuestCopyMismatch>
}

/**
 * The GuestAgent service: the agent of the machine a layer launched with `guestAgent: true`.
 *
 * @since 0.2.0
 * @category tags
 */
export class GuestAgent extends Context.Tag("effect-qemu/GuestAgent")<GuestAgent, GuestAgentService>() {}

/**
 * Options of {@link make}: the socket of the agent's chardev, a name for errors and logs, the
 * default timeout of a command (30 seconds) and the largest reply accepted (80 MiB: a 48 MiB file
 * read is 64 MiB of base64).
 *
 * @since 0.2.0
 * @category models
 */
export interface GuestAgentOptions {
  readonly socket: Duplex
  readonly name?: string | undefined
  readonly commandTimeout?: Duration.DurationInput | undefined
  readonly maxReplyBytes?: number | undefined
}

const Void = Schema.Unknown.pipe(Schema.transform(Schema.Void, { decode: () => undefined, encode: () => undefined }))
const Int = Schema.Number.pipe(Schema.int())
const FileRead = Schema.Struct({ count: Int, "buf-b64": Schema.String, eof: Schema.Boolean })
const FileWrite = Schema.Struct({ count: Int, eof: Schema.Boolean })

const toBase64 = (data: string | Uint8Array) =>
  (typeof data === "string" ? Buffer.from(data, "utf8") : Buffer.from(data.buffer, data.byteOffset, data.byteLength))
    .toString("base64")

const envList = (env: ExecStartOptions["env"]): ReadonlyArray<string> | undefined =>
  env === undefined
    ? undefined
    : Array.isArray(env)
    ? env as ReadonlyArray<string>
    : Object.entries(env as Record<string, string>).map(([key, value]) => `${key}=${value}`)

/** The typed commands over the core. */
const commands = (core: AgentCall) => {
  const { call } = core
  const execStart: GuestAgentService["execStart"] = (argv, options) => {
    if (argv.length === 0 || argv[0].length === 0) {
      return Effect.fail(new GuestAgentArgumentError({ field: "argv", detail: "name the program to run: argv[0]" }))
    }
    const env = envList(options?.env)
    return Effect.map(
      call(
        "guest-exec",
        {
          path: argv[0],
          arg: argv.slice(1),
          "capture-output": true,
          ...(env !== undefined ? { env } : {}),
          ...(options?.input !== undefined ? { "input-data": toBase64(options.input) } : {})
        },
        Schema.Struct({ pid: Int }),
        options
      ),
      (reply) => reply.pid
    )
  }
  return {
    execute: (command: string, args?: object, options?: CallOptions) => call(command, args, Schema.Unknown, options),
    ping: (options?: CallOptions) => call("guest-ping", undefined, Void, options),
    info: (options?: CallOptions) => call("guest-info", undefined, GuestAgentInfo, options),
    osInfo: (options?: CallOptions) => call("guest-get-osinfo", undefined, GuestOsInfo, options),
    hostName: (options?: CallOptions) =>
      Effect.map(
        call("guest-get-host-name", undefined, Schema.Struct({ "host-name": Schema.String }), options),
        (reply) => reply["host-name"]
      ),
    networkInterfaces: (options?: CallOptions) =>
      call("guest-network-get-interfaces", undefined, Schema.Array(GuestNetworkInterface), options),
    execStart,
    execStatus: (pid: number, options?: CallOptions) => call("guest-exec-status", { pid }, GuestExecStatus, options),
    fileOpen: (path: string, mode?: string, options?: CallOptions) =>
      call("guest-file-open", { path, ...(mode !== undefined ? { mode } : {}) }, Int, options),
    fileRead: (handle: number, count?: number, options?: CallOptions) =>
      Effect.map(
        call("guest-file-read", { handle, ...(count !== undefined ? { count } : {}) }, FileRead, options),
        (reply) => ({ data: new Uint8Array(Buffer.from(reply["buf-b64"], "base64")), eof: reply.eof })
      ),
    fileWrite: (handle: number, data: Uint8Array, options?: CallOptions) =>
      Effect.map(call("guest-file-write", { handle, "buf-b64": toBase64(data) }, FileWrite, options), (r) => r.count),
    fileClose: (handle: number, options?: CallOptions) => call("guest-file-close", { handle }, Void, options),
    fsfreezeStatus: (options?: CallOptions) =>
      call("guest-fsfreeze-status", undefined, Schema.Literal("thawed", "frozen"), options),
    fsfreezeFreeze: (options?: CallOptions & { readonly mountpoints?: ReadonlyArray<string> }) =>
      options?.mountpoints === undefined
        ? call("guest-fsfreeze-freeze", undefined, Int, options)
        : call("guest-fsfreeze-freeze-list", { mountpoints: options.mountpoints }, Int, options),
    fsfreezeThaw: (options?: CallOptions) => call("guest-fsfreeze-thaw", undefined, Int, options)
  }
}

const shutdownWith = (core: AgentCall) => (options?: ShutdownOptions) =>
  Either.match(Timer.decodeTimeoutOr(options?.replyWait, Duration.seconds(2)), {
    onLeft: (detail) => Effect.fail(new GuestAgentArgumentError({ field: "replyWait", detail })),
    onRight: (replyWait) =>
      core.callWithoutReply("guest-shutdown", { mode: options?.mode ?? "powerdown" }, replyWait, options)
  })

/**
 * A client over a connected agent channel, in the current scope (the socket is destroyed when it
 * closes). Nothing is sent until the first command.
 *
 * @since 0.2.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Machine } from "effect-qemu"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const vm = yield* Machine.make({ guestAgent: true, args: ["-kernel", "vmlinuz", "-initrd", "initrd.gz"] })
 *   yield* vm.guestAgent.waitReady({ timeout: "2 minutes" })
 *   const { exitCode, stdout } = yield* vm.guestAgent.exec(["uname", "-r"])
 * }))
 * ```
 */
export const make = (
  options: GuestAgentOptions
): Effect.Effect<GuestAgentService, GuestAgentArgumentError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? "guest-agent"
    const commandTimeout = yield* Either.match(Timer.decodeTimeoutOr(options.commandTimeout, Duration.seconds(30)), {
      onLeft: (detail) => Effect.fail(new GuestAgentArgumentError({ field: "commandTimeout", detail })),
      onRight: Effect.succeed
    })
    const maxReplyBytes = options.maxReplyBytes ?? 80 * 1024 * 1024
    if (!Number.isSafeInteger(maxReplyBytes) || maxReplyBytes < 4096) {
      return yield* new GuestAgentArgumentError({
        field: "maxReplyBytes",
        detail: "expected an integer of at least 4096"
      })
    }
    const channel = yield* Channel.make(options.socket, `${name} guest agent`, maxReplyBytes)
    const core = makeCall(channel, name, commandTimeout)
    const typed = commands(core)
    const partial = { name, waitReady: core.waitReady, shutdown: shutdownWith(core), ...typed }
    const service: GuestAgentService = {
      ...partial,
      exec: (argv, execOptions) => execCommand(partial, core, argv, execOptions),
      copyIn: (hostPath, guestPath, copyOptions) => copyIn(service, core, hostPath, guestPath, copyOptions),
      copyOut: (guestPath, hostPath, copyOptions) => copyOut(service, core, guestPath, hostPath, copyOptions)
    }
    return service
  })

/**
 * The client as a layer, closed when the layer is released.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: GuestAgentOptions): Layer.Layer<GuestAgent, GuestAgentArgumentError> =>
  Layer.scoped(GuestAgent, make(options))

/**
 * A client of an agent that is not there: every command fails at once with
 * `GuestAgentUnavailable` carrying `reason` (e.g. that the machine has no agent channel).
 *
 * @since 0.2.0
 * @category constructors
 */
export const unavailable = (name: string, reason: string): GuestAgentService => {
  const fail = () => Effect.fail(new GuestAgentUnavailable({ name, reason }))
  return {
    name,
    waitReady: fail,
    execute: fail,
    ping: fail,
    info: fail,
    osInfo: fail,
    hostName: fail,
    networkInterfaces: fail,
    execStart: fail,
    execStatus: fail,
    exec: fail,
    fileOpen: fail,
    fileRead: fail,
    fileWrite: fail,
    fileClose: fail,
    fsfreezeStatus: fail,
    fsfreezeFreeze: fail,
    fsfreezeThaw: fail,
    shutdown: fail,
    copyIn: fail,
    copyOut: fail
  }
}
