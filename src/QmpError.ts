/**
 * What can go wrong when talking QMP, one error type per thing a caller may want to handle.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import { printable } from "./internal/lineDecoder.js"

/**
 * QEMU answered a command with an error reply.
 *
 * @since 0.1.0
 * @category errors
 */
export class QmpCommandError extends Data.TaggedError("QmpCommandError")<{
  /** The command that was executed. */
  readonly command: string
  /** The QMP error class, e.g. `CommandNotFound` or `GenericError`. */
  readonly errorClass: string
  /** QEMU's human-readable description. */
  readonly desc: string
  /** The arguments that were sent. */
  readonly args?: unknown
}> {
  get message(): string {
    // Class and description come from the peer: printed escaped, never as raw terminal bytes.
    return `QMP command "${printable(this.command)}" failed: ${printable(this.errorClass)}: ${printable(this.desc)}`
  }
}

/**
 * The running QEMU has no such command: found before anything was sent, from the list of
 * commands this QEMU reported (`query-commands`, asked once per session, on the first command
 * outside the handful every QEMU has). Usually the surface was generated for another QEMU
 * version, the feature was compiled out of this build, or the name is misspelt.
 *
 * @since 0.2.0
 * @category errors
 */
export class QmpCommandUnavailable extends Data.TaggedError("QmpCommandUnavailable")<{
  /** The command that was asked for. */
  readonly command: string
  /** The running QEMU's version, `major.minor.micro`. */
  readonly version: string
  /** The running QEMU's package string from its greeting, e.g. `Debian 1:7.2+dfsg-7`; may be empty. */
  readonly package: string
  /** The closest command this QEMU has, when one is close enough to be a likely misspelling. */
  readonly suggestion?: string | undefined
}> {
  get message(): string {
    const build = this.package.trim() === "" ? "" : ` (${printable(this.package.trim())})`
    const hint = this.suggestion === undefined ? "" : `; did you mean "${this.suggestion}"?`
    return `QEMU ${this.version}${build} has no QMP command "${printable(this.command)}"${hint}`
  }
}

/**
 * An operation did not complete within its timeout: a command's reply, an event, the greeting.
 *
 * @since 0.1.0
 * @category errors
 */
export class QmpTimeout extends Data.TaggedError("QmpTimeout")<{
  /** What was being waited for, e.g. `execute query-status` or `event STOP`. */
  readonly operation: string
  /** The timeout that elapsed. */
  readonly timeout: Duration.Duration
}> {
  get message(): string {
    return `QMP ${this.operation} timed out after ${Duration.format(this.timeout)}`
  }
}

/**
 * The QMP connection ended (QEMU quit or crashed, the socket was reset, or the client closed it)
 * before the operation could complete, or the operation was started after it ended.
 *
 * @since 0.1.0
 * @category errors
 */
export class QmpDisconnected extends Data.TaggedError("QmpDisconnected")<{
  /** Why the connection ended, e.g. `peer closed the connection` or `closed by the client`. */
  readonly reason: string
  /** The operation that was cut short, when there was one. */
  readonly operation?: string
  /** The underlying socket error, when there was one. */
  readonly cause?: unknown
}> {
  get message(): string {
    const during = this.operation === undefined ? "" : ` during ${this.operation}`
    return `QMP connection closed${during}: ${this.reason}`
  }
}

/**
 * The peer broke the protocol: invalid JSON, a message over the size bound, JSON that is no QMP
 * message, or a reply to a request that was never sent. The connection is closed when this
 * happens; the operations that were pending fail with this error.
 *
 * @since 0.1.0
 * @category errors
 */
export class QmpProtocolError extends Data.TaggedError("QmpProtocolError")<{
  readonly reason: "InvalidJson" | "MessageTooLong" | "NotQmp" | "UnknownId" | "UnexpectedGreeting"
  /** What was wrong, with an excerpt of the offending input. */
  readonly detail: string
}> {
  get message(): string {
    return `QMP protocol error (${this.reason}): ${this.detail}`
  }
}

/**
 * The QMP session could not be established: the socket did not open, no greeting arrived in
 * time, the greeting was not QMP, or capability negotiation failed.
 *
 * @since 0.1.0
 * @category errors
 */
export class QmpConnectError extends Data.TaggedError("QmpConnectError")<{
  readonly reason: "Open" | "GreetingTimeout" | "BadGreeting" | "Negotiation" | "Closed" | "InvalidOptions"
  /** Where the client tried to connect, e.g. `unix:/run/vm.sock` or `fd`. */
  readonly address: string
  readonly detail: string
  readonly cause?: unknown
}> {
  get message(): string {
    return `QMP connection to ${this.address} failed (${this.reason}): ${this.detail}`
  }
}

/**
 * A reply did not decode with the generated `Schema` of its command (only with the session
 * option `decodeReplies`). The connection stays open.
 *
 * @since 0.1.0
 * @category errors
 */
export class QmpReplyError extends Data.TaggedError("QmpReplyError")<{
  readonly command: string
  /** What did not fit, from the schema decoder. */
  readonly detail: string
  /** The reply's `return` value as received. */
  readonly reply: unknown
}> {
  get message(): string {
    return `QMP reply to "${this.command}" does not match its schema: ${this.detail}`
  }
}

/**
 * Everything `execute` can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type QmpExecuteError =
  | QmpCommandError
  | QmpCommandUnavailable
  | QmpTimeout
  | QmpDisconnected
  | QmpProtocolError
  | QmpArgumentError
  | QmpReplyError

/**
 * Everything waiting for an event can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type QmpEventError = QmpTimeout | QmpDisconnected | QmpProtocolError | QmpArgumentError | QmpMatchError

/**
 * The predicate given to an event wait (`match: (event) => ...`) threw. Only that wait fails; the
 * session and every other waiter carry on.
 *
 * @since 0.2.0
 * @category errors
 */
export class QmpMatchError extends Data.TaggedError("QmpMatchError")<{
  /** The name of the event the predicate was given. */
  readonly event: string
  /** What the predicate threw, as text. */
  readonly detail: string
  /** What the predicate threw. */
  readonly cause?: unknown
}> {
  get message(): string {
    return `the match predicate threw on event ${printable(this.event)}: ${printable(this.detail)}`
  }
}

/**
 * The arguments of a call are not acceptable, found before anything is sent: they do not fit the
 * schema (`checkArgs`), cannot be sent as JSON without changing them (`NotSerializable`: `NaN`, a
 * function, a cycle, a value nested too deeply), or an option of the call is invalid
 * (`InvalidOption`, e.g. a timeout that is no positive duration). `path` names the offending
 * member (`"options.driver"`, `"devices[2].id"`, `"timeout"`), empty for the arguments object itself.
 *
 * @since 0.1.0
 * @category errors
 */
export class QmpArgumentError extends Data.TaggedError("QmpArgumentError")<{
  readonly command: string
  readonly reason:
    | "UnknownCommand"
    | "UnknownMember"
    | "MissingMember"
    | "WrongType"
    | "BadEnumValue"
    | "NotSerializable"
    | "InvalidOption"
  readonly path: string
  readonly detail: string
}> {
  get message(): string {
    const where = this.path.length > 0 ? ` at ${this.path}` : ""
    return `invalid arguments for ${printable(this.command)}${where}: ${this.detail}`
  }
}

/**
 * Sending a descriptor failed. `reason` says which way:
 * - `HelperMissing`: no python3 (install the `python3` package);
 * - `InvalidArgument`: the descriptor is not an integer >= 0, or the socket is closed;
 * - `HelperFailed`: the helper ran and exited non-zero (`exitCode`, `stderr`);
 * - `Timeout`: the helper did not finish within `timeout` and was killed.
 *
 * @since 0.1.0
 * @category errors
 */
export class ScmRightsError extends Data.TaggedError("ScmRightsError")<{
  readonly reason: "HelperMissing" | "InvalidArgument" | "HelperFailed" | "Timeout"
  readonly fd: number
  readonly detail: string
  readonly exitCode?: number | null
  readonly stderr?: string
  readonly cause?: unknown
}> {
  get message(): string {
    const stderr = this.stderr !== undefined && this.stderr.length > 0 ? ` (helper stderr: ${this.stderr.trim()})` : ""
    return `cannot send fd ${this.fd} over the QMP socket: ${this.detail}${stderr}`
  }
}

/**
 * A launch-time descriptor that QEMU would refuse, or that would not mean what was asked.
 * `index` is the position in the list given (or -1 for `firstChildFd`), `field` what to fix.
 *
 * @since 0.1.0
 * @category errors
 */
export class FdPassError extends Data.TaggedError("FdPassError")<{
  readonly index: number
  readonly field: "fd" | "set" | "opaque" | "opts" | "firstChildFd"
  readonly value: unknown
  readonly reason: string
}> {
  get message(): string {
    const where = this.index < 0 ? this.field : `fds[${this.index}].${this.field}`
    return `${where} = ${JSON.stringify(this.value)}: ${this.reason}`
  }
}
