/**
 * What can go wrong launching, running and stopping a machine.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"

/**
 * The configuration is invalid. Raised before anything is spawned or created on disk. (Named
 * apart from Effect's own `ConfigError`, which `layerConfig` can fail with too, so that both can
 * be told apart with `catchTag`.)
 *
 * @since 0.1.0
 * @category errors
 */
export class MachineConfigError extends Data.TaggedError("MachineConfigError")<{
  /** The offending field, e.g. `binary` or `console.index`. */
  readonly field: string
  /** What is wrong and how to fix it. */
  readonly detail: string
}> {
  get message(): string {
    return `invalid machine configuration, field "${this.field}": ${this.detail}`
  }
}

/**
 * QEMU could not be launched, or exited or stalled before its monitor was ready.
 *
 * @since 0.1.0
 * @category errors
 */
export class LaunchError extends Data.TaggedError("LaunchError")<{
  readonly reason:
    | "BinaryNotFound"
    | "NotExecutable"
    | "TempDirFailed"
    | "SpawnFailed"
    | "ConsoleFailed"
    | "ExitedEarly"
    | "MonitorFailed"
    | "Timeout"
    | "Network"
  /** The machine's name. */
  readonly name: string
  /** What happened, in a sentence. */
  readonly detail: string
  /** The full command line, wrapper included. Empty when nothing was spawned. */
  readonly commandLine: ReadonlyArray<string>
  /** QEMU's exit code, when it exited. */
  readonly exitCode?: number | null
  /** The signal that ended QEMU, when one did. */
  readonly signal?: string | null
  /** The last lines QEMU wrote to stdout and stderr, e.g. `qemu-system-x86_64: -foo: invalid option`. */
  readonly logTail?: string
  readonly cause?: unknown
}> {
  get message(): string {
    const parts = [`cannot launch machine "${this.name}" (${this.reason}): ${this.detail}`]
    if (this.exitCode !== undefined && this.exitCode !== null) parts.push(`exit code ${this.exitCode}`)
    if (this.signal) parts.push(`signal ${this.signal}`)
    if (this.logTail) parts.push(`QEMU said: ${this.logTail.trim()}`)
    if (this.commandLine.length > 0) parts.push(`command: ${formatCommandLine(this.commandLine)}`)
    return parts.join("; ")
  }
}

/**
 * A graceful shutdown was asked for but did not happen: `quit` failed or QEMU did not exit in
 * time. The process was killed and reaped before this error was raised.
 *
 * @since 0.1.0
 * @category errors
 */
export class AbnormalShutdown extends Data.TaggedError("AbnormalShutdown")<{
  readonly name: string
  /**
   * `Timeout`: QEMU did not exit within the bound (after `quit` or SIGTERM, or waiting for the
   * guest); `QuitFailed`: the `quit` command itself failed.
   */
  readonly reason: "Timeout" | "QuitFailed"
  /** Why the graceful path failed. */
  readonly detail: string
  /** The timeout that elapsed, when it was a timeout. */
  readonly timeout?: Duration.Duration
  readonly exitCode?: number | null
  readonly signal?: string | null
  readonly cause?: unknown
}> {
  get message(): string {
    return `machine "${this.name}" could not be shut down gracefully: ${this.detail}`
  }
}

/**
 * Renders a command line for a human, quoting what a shell would split. Nothing is ever run
 * through a shell: this is for error messages and logs only.
 *
 * @since 0.1.0
 * @category models
 */
export const formatCommandLine = (argv: ReadonlyArray<string>): string =>
  argv.map((arg) => /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`).join(" ")
