/**
 * What qemu-img and qemu-io share: running the binary with typed errors, checking the arguments a
 * caller passes, and the settings of a tool service.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { ImageTool } from "../ImageError.js"
import { ImageArgumentError, ImageToolError, ImageToolNotFoundError } from "../ImageError.js"
import { decodeTimeoutOr } from "./timer.js"
import { runTool, type ToolExit } from "./toolProcess.js"

/** A tool service's settings, decoded. */
export interface ToolSettings {
  readonly tool: ImageTool
  readonly binary: string
  readonly timeout: Duration.Duration
  readonly maxOutputBytes: number
}

/** The options a tool service takes. */
export interface ToolServiceOptions {
  /** The binary: a name looked up on `PATH` or a path. */
  readonly binary?: string | undefined
  /** How long one call may run before the tool is killed. */
  readonly timeout?: Duration.DurationInput | undefined
  /** The most output (stdout and stderr together) one call may produce. */
  readonly maxOutputBytes?: number | undefined
}

/** Decodes a tool service's options; a bad one is an {@link ImageArgumentError}. */
export const toolSettings = (
  tool: ImageTool,
  options: ToolServiceOptions,
  defaults: { readonly timeout: Duration.Duration }
): Effect.Effect<ToolSettings, ImageArgumentError> => {
  const bad = (field: string, detail: string) =>
    Effect.fail(new ImageArgumentError({ tool, operation: "make", field, detail }))
  const binary = options.binary ?? tool
  if (binary.length === 0 || binary.includes("\0")) return bad("binary", "give a binary name or path")
  const timeout = decodeTimeoutOr(options.timeout, defaults.timeout)
  if (Either.isLeft(timeout)) return bad("timeout", timeout.left)
  const maxOutputBytes = options.maxOutputBytes ?? 64 * 1024 * 1024
  if (!Number.isSafeInteger(maxOutputBytes) || maxOutputBytes <= 0) {
    return bad("maxOutputBytes", "give a positive integer")
  }
  return Effect.succeed({ tool, binary, timeout: timeout.right, maxOutputBytes })
}

/** A call's own timeout, or the service's. */
export const callTimeout = (
  settings: ToolSettings,
  operation: string,
  timeout: Duration.DurationInput | undefined
): Effect.Effect<Duration.Duration, ImageArgumentError> =>
  Either.match(decodeTimeoutOr(timeout, settings.timeout), {
    onLeft: (detail) =>
      Effect.fail(new ImageArgumentError({ tool: settings.tool, operation, field: "timeout", detail })),
    onRight: Effect.succeed
  })

/**
 * Runs the tool; succeeds with how it ended whatever the exit code. Fails when it cannot be found
 * or started, runs past its timeout, or writes too much.
 */
export const run = (
  settings: ToolSettings,
  operation: string,
  args: ReadonlyArray<string>,
  timeout: Duration.Duration = settings.timeout
): Effect.Effect<ToolExit, ImageToolError | ImageToolNotFoundError> =>
  runTool(settings.binary, args, { timeout, maxOutputBytes: settings.maxOutputBytes }).pipe(
    Effect.mapError((failure) =>
      failure._tag === "NotFound"
        ? new ImageToolNotFoundError({ tool: settings.tool, binary: settings.binary, detail: failure.detail })
        : new ImageToolError({
          tool: settings.tool,
          operation,
          reason: failure._tag === "Timeout" ? "Timeout" : failure._tag === "SpawnFailed" ? "Spawn" : "Output",
          args,
          exitCode: null,
          signal: null,
          stderr: "",
          stdout: "",
          detail: failure._tag === "Timeout" ? `did not finish within ${Duration.format(timeout)}` : failure.detail
        })
    ),
    Effect.withSpan(`${settings.tool === "qemu-img" ? "QemuImg" : "QemuIo"}.${operation}`, {
      attributes: { "tool.binary": settings.binary }
    })
  )

/** The error of a tool that ended with an exit code (or signal) the call does not accept. */
export const exitError = (
  settings: ToolSettings,
  operation: string,
  args: ReadonlyArray<string>,
  exit: ToolExit
): ImageToolError =>
  new ImageToolError({
    tool: settings.tool,
    operation,
    reason: exit.signal !== null ? "Signal" : "Exit",
    args,
    exitCode: exit.exitCode,
    signal: exit.signal,
    stderr: exit.stderr,
    stdout: exit.stdout,
    detail: exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.exitCode}`
  })

/** Runs the tool and fails unless it exits with one of `accept` (default: 0). */
export const runChecked = (
  settings: ToolSettings,
  operation: string,
  args: ReadonlyArray<string>,
  options: { readonly timeout?: Duration.Duration; readonly accept?: ReadonlyArray<number> } = {}
): Effect.Effect<ToolExit, ImageToolError | ImageToolNotFoundError> =>
  Effect.flatMap(
    run(settings, operation, args, options.timeout),
    (exit) =>
      exit.exitCode !== null && (options.accept ?? [0]).includes(exit.exitCode)
        ? Effect.succeed(exit)
        : Effect.fail(exitError(settings, operation, args, exit))
  )

/** The error of output that does not read as the documented format. */
export const outputError = (
  settings: ToolSettings,
  operation: string,
  args: ReadonlyArray<string>,
  exit: ToolExit,
  detail: string
): ImageToolError => new ImageToolError({ ...exitError(settings, operation, args, exit), reason: "Output", detail })

/** Refuses a string argument that argv cannot carry (a NUL) or that is empty. */
export const checkText = (
  settings: ToolSettings,
  operation: string,
  field: string,
  value: string
): Effect.Effect<string, ImageArgumentError> =>
  value.length === 0 || value.includes("\0")
    ? Effect.fail(
      new ImageArgumentError({
        tool: settings.tool,
        operation,
        field,
        detail: value.length === 0 ? "must not be empty" : "a NUL character cannot be passed to a program"
      })
    )
    : Effect.succeed(value)
