/**
 * What can go wrong talking to QEMU's guest agent, as data a caller can act on. Text that comes
 * from the guest is shown with its control characters escaped.
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import { printable } from "./internal/lineDecoder.js"

const quoteArgv = (argv: ReadonlyArray<string>): string => printable(argv.map((arg) => JSON.stringify(arg)).join(" "))

const tail = (label: string, text: string): string => {
  const lines = text.split("\n")
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop()
  return lines.length === 0 ? "" : `\n${label}:\n${lines.slice(-10).map((line) => `  | ${printable(line)}`).join("\n")}`
}

/**
 * The agent is not answering: it did not answer `guest-sync-delimited` within the time allowed (not
 * started yet, not installed in the guest, or the guest is hung), or its channel is closed (the
 * machine has no agent channel, or QEMU is gone). `reason` says which.
 *
 * @since 0.2.0
 * @category errors
 */
export class GuestAgentUnavailable extends Data.TaggedError("GuestAgentUnavailable")<{
  readonly name: string
  readonly reason: string
}> {
  /**
   * @since 0.2.0
   */
  override get message(): string {
    return `the guest agent of "${this.name}" is not answering: ${this.reason}`
  }
}

/**
 * The agent took a command but did not reply in time. The channel is brought back in step (with
 * `guest-sync-delimited`) before the next command, so a late reply is never taken for another's.
 *
 * @since 0.2.0
 * @category errors
 */
export class GuestAgentTimeout extends Data.TaggedError("GuestAgentTimeout")<{
  readonly name: string
  readonly command: string
  readonly timeout: Duration.Duration
}> {
  /**
   * @since 0.2.0
   */
  override get message(): string {
    return `the guest agent of "${this.name}" did not answer ${this.command} within ${Duration.format(this.timeout)}`
  }
}

/**
 * The agent refused a command: its error reply's QAPI `errorClass` (usually `GenericError`) and
 * `desc`, e.g. a file that cannot be opened or a command disabled in the guest.
 *
 * @since 0.2.0
 * @category errors
 */
export class GuestAgentReplyError extends Data.TaggedError("GuestAgentReplyError")<{
  readonly name: string
  readonly command: string
  readonly errorClass: string
  readonly desc: string
}> {
  /**
   * @since 0.2.0
   */
  override get message(): string {
    return `${this.command} failed in the guest agent of "${this.name}": ${printable(this.desc)} (${
      printable(this.errorClass)
    })`
  }
}

/**
 * The agent answered with something that is not what the command returns (a different agent, or
 * a guest that is not to be trusted): `detail` says what did not fit.
 *
 * @since 0.2.0
 * @category errors
 */
export class GuestAgentProtocolError extends Data.TaggedError("GuestAgentProtocolError")<{
  readonly name: string
  readonly command: string
  readonly detail: string
}> {
  /**
   * @since 0.2.0
   */
  override get message(): string {
    return `the guest agent of "${this.name}" answered ${this.command} with an unexpected reply: ${
      printable(this.detail)
    }`
  }
}

/**
 * A caller's argument cannot be used (a timeout that is no positive duration, an empty command, a
 * chunk size beyond the agent's limit, a host file that cannot be read or written): `field` names
 * it and `detail` says what to fix.
 *
 * @since 0.2.0
 * @category errors
 */
export class GuestAgentArgumentError extends Data.TaggedError("GuestAgentArgumentError")<{
  readonly field: string
  readonly detail: string
  readonly cause?: unknown
}> {
  /**
   * @since 0.2.0
   */
  override get message(): string {
    return `invalid guest agent argument ${this.field}: ${this.detail}`
  }
}

/**
 * A command run in the guest (`exec` with `check: true`, or the hash check of a copy) exited with
 * a non-zero code or was killed by a signal; its output is kept.
 *
 * @since 0.2.0
 * @category errors
 */
export class GuestExecFailed extends Data.TaggedError("GuestExecFailed")<{
  readonly argv: ReadonlyArray<string>
  readonly exitCode: number | null
  readonly signal: number | null
  readonly stdout: string
  readonly stderr: string
}> {
  /**
   * @since 0.2.0
   */
  override get message(): string {
    const how = this.signal !== null ? `was killed by signal ${this.signal}` : `exited with code ${this.exitCode}`
    return `${quoteArgv(this.argv)} ${how} in the guest${tail("stderr", this.stderr)}${tail("stdout", this.stdout)}`
  }
}

/**
 * A command run in the guest did not finish within its timeout. The agent has no command to stop
 * a process it started, so the client sends `kill -KILL <pid>` through the agent (`killed` says
 * whether that ran). `stdout` and `stderr` hold what the command printed until then, when the
 * agent reported it.
 *
 * @since 0.2.0
 * @category errors
 */
export class GuestExecTimeout extends Data.TaggedError("GuestExecTimeout")<{
  readonly argv: ReadonlyArray<string>
  readonly pid: number
  readonly timeout: Duration.Duration
  readonly killed: boolean
  readonly stdout: string
  readonly stderr: string
}> {
  /**
   * @since 0.2.0
   */
  override get message(): string {
    return `${quoteArgv(this.argv)} (guest pid ${this.pid}) did not finish within ${Duration.format(this.timeout)}; ${
      this.killed ? "it was killed" : "it could not be killed and may still run"
    }${tail("stderr", this.stderr)}${tail("stdout", this.stdout)}`
  }
}

/**
 * A file copied to or from the guest does not have the same SHA-256 on both sides.
 *
 * @since 0.2.0
 * @category errors
 */
export class GuestCopyMismatch extends Data.TaggedError("GuestCopyMismatch")<{
  readonly direction: "in" | "out"
  readonly hostPath: string
  readonly guestPath: string
  readonly hostSha256: string
  readonly guestSha256: string
}> {
  /**
   * @since 0.2.0
   */
  override get message(): string {
    const [from, to] = this.direction === "in"
      ? [`host ${this.hostPath}`, `guest ${this.guestPath}`]
      : [`guest ${this.guestPath}`, `host ${this.hostPath}`]
    return `copy from ${printable(from)} to ${printable(to)} does not match: host sha256 ${this.hostSha256}, ` +
      `guest sha256 ${printable(this.guestSha256)}`
  }
}

/**
 * What an agent command can fail with.
 *
 * @since 0.2.0
 * @category errors
 */
export type GuestAgentCallError =
  | GuestAgentUnavailable
  | GuestAgentTimeout
  | GuestAgentReplyError
  | GuestAgentProtocolError
  | GuestAgentArgumentError
