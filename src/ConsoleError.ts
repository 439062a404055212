/**
 * What can go wrong on a VM's serial console, as data a caller can act on.
 *
 * Messages show the guest's output with its control characters escaped (a terminal showing the
 * message must not act on the guest's escape sequences); the `recent` fields keep the raw bytes.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import { printable } from "./internal/lineDecoder.js"

/** How many lines of console output a message shows; the field keeps more. */
const messageLines = 20

const indentedTail = (recent: string): string => {
  const lines = recent.split("\n").map((line) => line.replace(/\r+$/, ""))
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop()
  if (lines.length === 0) return "  (no console output)"
  return lines.slice(-messageLines).map((line) => `  | ${printable(line)}`).join("\n")
}

const droppedNote = (droppedBytes: number | undefined): string =>
  droppedBytes !== undefined && droppedBytes > 0
    ? `; ${droppedBytes} bytes of output after the cursor were dropped unread (older than bufferBytes): ` +
      `raise bufferBytes or wait sooner`
    : ""

/**
 * The console could not be opened, written to, or logged, or an option was not valid: `reason`
 * says which, `detail` and `cause` say why.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConsoleError extends Data.TaggedError("ConsoleError")<{
  readonly reason: "Connect" | "Write" | "LogFile" | "InvalidOption"
  readonly detail: string
  readonly cause?: unknown
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    if (this.reason === "InvalidOption") return `invalid console option: ${printable(this.detail)}`
    return `console ${this.reason.toLowerCase()} failed: ${printable(this.detail)}`
  }
}

/**
 * A console operation ran out of time: a `waitFor` whose pattern never matched (`operation`
 * `"waitFor"`, the default), or a `write` the guest did not take in time (`"write"`; `pendingBytes`
 * were still queued). `recent` holds the tail of the console output at that moment, which is
 * usually what tells why; `droppedBytes` says how much output arrived after the search started but
 * was pushed out of the buffer (`bufferBytes`) before it could be searched.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConsoleTimeout extends Data.TaggedError("ConsoleTimeout")<{
  readonly operation?: "waitFor" | "write"
  readonly pattern?: string
  readonly timeout: Duration.Duration
  readonly recent: string
  readonly droppedBytes?: number
  readonly pendingBytes?: number
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    if (this.operation === "write") {
      return `the guest did not take console input within ${Duration.format(this.timeout)}` +
        `${this.pendingBytes === undefined ? "" : ` (${this.pendingBytes} bytes still queued)`}; ` +
        `recent output:\n${indentedTail(this.recent)}`
    }
    return `no console output matched ${printable(this.pattern ?? "")} within ${Duration.format(this.timeout)}` +
      `${droppedNote(this.droppedBytes)}; recent output:\n${indentedTail(this.recent)}`
  }
}

/**
 * The console is closed: closed by `close`, by the end of its scope, or because QEMU went away.
 * `recent` holds the tail of what it printed last; `droppedBytes` as in {@link ConsoleTimeout}.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConsoleClosed extends Data.TaggedError("ConsoleClosed")<{
  readonly operation: "waitFor" | "write"
  readonly pattern?: string
  readonly recent: string
  readonly droppedBytes?: number
  /** Why there is no console, when it never existed (e.g. the machine was launched without one). */
  readonly detail?: string
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const what = this.pattern === undefined ? this.operation : `${this.operation} ${printable(this.pattern)}`
    if (this.detail !== undefined) return `console unavailable for ${what}: ${printable(this.detail)}`
    return `console closed during ${what}${droppedNote(this.droppedBytes)}; recent output:\n${
      indentedTail(this.recent)
    }`
  }
}

/**
 * A `waitFor` met one of its `failOn` patterns before the pattern it waited for: e.g. "Kernel panic"
 * while waiting for a login prompt. `failure` names the failure pattern, `matched` is the text it
 * matched, `recent` the tail of the output.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConsoleFailureMatched extends Data.TaggedError("ConsoleFailureMatched")<{
  readonly pattern: string
  readonly failure: string
  readonly matched: string
  readonly recent: string
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `console output matched the failure pattern ${printable(this.failure)} ` +
      `(${printable(JSON.stringify(this.matched))}) while waiting for ${printable(this.pattern)}; ` +
      `recent output:\n${indentedTail(this.recent)}`
  }
}
