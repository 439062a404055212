/**
 * What can go wrong on a VM's serial console, as data a caller can act on.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"

/** How many lines of console output a message shows; the field keeps more. */
const messageLines = 20

const indentedTail = (recent: string): string => {
  const lines = recent.split("\n").map((line) => line.replace(/\r+$/, ""))
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop()
  if (lines.length === 0) return "  (no console output)"
  return lines.slice(-messageLines).map((line) => `  | ${line}`).join("\n")
}

/**
 * The console could not be opened, written to, or logged: `reason` says which, `cause` says why.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConsoleError extends Data.TaggedError("ConsoleError")<{
  readonly reason: "Connect" | "Write" | "LogFile"
  readonly detail: string
  readonly cause?: unknown
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `console ${this.reason.toLowerCase()} failed: ${this.detail}`
  }
}

/**
 * A `waitFor` ran out of time. `recent` holds the tail of the console output at that moment,
 * which is usually what tells why the expected text never came.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConsoleTimeout extends Data.TaggedError("ConsoleTimeout")<{
  readonly pattern: string
  readonly timeout: Duration.Duration
  readonly recent: string
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    return `no console output matched ${this.pattern} within ${Duration.format(this.timeout)}; ` +
      `recent output:\n${indentedTail(this.recent)}`
  }
}

/**
 * The console is closed: closed by `close`, by the end of its scope, or because QEMU went away.
 * `recent` holds the tail of what it printed last.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConsoleClosed extends Data.TaggedError("ConsoleClosed")<{
  readonly operation: "waitFor" | "write"
  readonly pattern?: string
  readonly recent: string
  /** Why there is no console, when it never existed (e.g. the machine was launched without one). */
  readonly detail?: string
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const what = this.pattern === undefined ? this.operation : `${this.operation} ${this.pattern}`
    if (this.detail !== undefined) return `console unavailable for ${what}: ${this.detail}`
    return `console closed during ${what}; recent output:\n${indentedTail(this.recent)}`
  }
}
