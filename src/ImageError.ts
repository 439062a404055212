/**
 * Errors of the image tools: `qemu-img` and `qemu-io` failing with their own message, a tool that
 * is not installed, arguments that cannot be passed, and a pattern that did not verify.
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"

/**
 * The image tool a call ran.
 *
 * @since 0.2.0
 * @category models
 */
export type ImageTool = "qemu-img" | "qemu-io"

const lastLines = (text: string, count = 3): string => text.trim().split("\n").slice(-count).join("\n")

/**
 * A tool ran and failed. `reason` says how: `Exit` (a non-zero exit code, with the tool's own
 * message in `stderr`), `Signal` (killed by a signal), `Timeout` (killed when the call's timeout
 * elapsed), `Output` (more output than the call allows, or output that does not read as the
 * documented format), `Spawn` (the binary exists but could not be started).
 *
 * @since 0.2.0
 * @category errors
 */
export class ImageToolError extends Data.TaggedError("ImageToolError")<{
  readonly tool: ImageTool
  readonly operation: string
  readonly reason: "Exit" | "Signal" | "Timeout" | "Output" | "Spawn"
  readonly args: ReadonlyArray<string>
  readonly exitCode: number | null
  readonly signal: string | null
  /** What the tool wrote to stderr: its own error message. */
  readonly stderr: string
  /** What the tool wrote to stdout (qemu-io reports failed commands there). */
  readonly stdout: string
  readonly detail: string
}> {
  get message(): string {
    const said = lastLines(this.stderr) || lastLines(this.stdout)
    const how = this.reason === "Exit" ? `exited with code ${this.exitCode}` : this.detail
    return `${this.tool} ${this.operation} ${how}${said.length > 0 ? `: ${said}` : ""}`
  }
}

/**
 * The tool's binary cannot be found or run: not installed, not on `PATH`, or not executable.
 *
 * @since 0.2.0
 * @category errors
 */
export class ImageToolNotFoundError extends Data.TaggedError("ImageToolNotFoundError")<{
  readonly tool: ImageTool
  readonly binary: string
  readonly detail: string
}> {
  get message(): string {
    return `${this.tool} not found: ${this.detail}`
  }
}

/**
 * An argument that cannot be passed to the tool as given; nothing was run. `field` names it.
 *
 * @since 0.2.0
 * @category errors
 */
export class ImageArgumentError extends Data.TaggedError("ImageArgumentError")<{
  readonly tool: ImageTool
  readonly operation: string
  readonly field: string
  readonly detail: string
}> {
  get message(): string {
    return `${this.tool} ${this.operation}: ${this.field}: ${this.detail}`
  }
}

/**
 * A `read -P` (or `readv -P`, `aio_read -P`) of qemu-io found other bytes than the pattern: the
 * data did not verify. `output` is what qemu-io printed, `offset` where the first mismatch was
 * reported.
 *
 * @since 0.2.0
 * @category errors
 */
export class PatternMismatchError extends Data.TaggedError("PatternMismatchError")<{
  readonly image: string
  readonly commands: ReadonlyArray<string>
  readonly offset: number | bigint | undefined
  readonly output: string
}> {
  get message(): string {
    const line = this.output.split("\n").find((l) => l.startsWith("Pattern verification failed")) ?? ""
    return `qemu-io on ${this.image}: ${line.length > 0 ? line : "pattern verification failed"}`
  }
}
