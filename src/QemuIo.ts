/**
 * The `qemu-io` tool as a service: run qemu-io commands (`write -P 0xab 0 64k`,
 * `read -P 0xab 0 64k`, `discard`, `map`...) against an image and get their output. A read whose
 * pattern does not verify fails with a {@link PatternMismatchError}, never as success. For a
 * running machine, {@link hmpCommand} writes the HMP `qemu-io` command to send through
 * `human-monitor-command`, and {@link verifyOutput} reads its reply the same way.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { QemuIo } from "effect-qemu"
 *
 * const program = Effect.gen(function*() {
 *   const io = yield* QemuIo.QemuIo
 *   yield* io.run("/tmp/disk.qcow2", ["write -P 0xab 0 64k", "read -P 0xab 0 64k"], { format: "qcow2" })
 * }).pipe(Effect.provide(QemuIo.layer()))
 * ```
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import {
  ImageArgumentError,
  type ImageToolError,
  type ImageToolNotFoundError,
  PatternMismatchError
} from "./ImageError.js"
import * as Tool from "./internal/imageTool.js"

/**
 * What a qemu-io call can fail with.
 *
 * @since 0.2.0
 * @category errors
 */
export type QemuIoFailure = ImageToolError | ImageToolNotFoundError | ImageArgumentError | PatternMismatchError

/**
 * Options of {@link QemuIoService.run}.
 *
 * @since 0.2.0
 * @category models
 */
export interface RunOptions {
  /** The image's format (`-f`); without it qemu-io probes, and refuses writes to a probed raw image. */
  readonly format?: string | undefined
  /** Open the image read-only (`-r`). */
  readonly readOnly?: boolean | undefined
  /** Write to a temporary snapshot, leaving the image untouched (`-s`). */
  readonly snapshot?: boolean | undefined
  /** The cache mode (`-t`): `none`, `writeback`, `writethrough`, `directsync`, `unsafe`. */
  readonly cache?: string | undefined
  /** This call's timeout instead of the service's. */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * The qemu-io service.
 *
 * @since 0.2.0
 * @category models
 */
export interface QemuIoService {
  /**
   * Runs the commands, in order, against `image` (passed as qemu-io reads it, after `--`) and
   * returns what qemu-io printed. Fails if a pattern does not verify or if qemu-io fails.
   */
  readonly run: (
    image: string,
    commands: string | ReadonlyArray<string>,
    options?: RunOptions
  ) => Effect.Effect<string, QemuIoFailure>
}

/**
 * The qemu-io service tag.
 *
 * @since 0.2.0
 * @category tags
 */
export class QemuIo extends Context.Tag("effect-qemu/QemuIo")<QemuIo, QemuIoService>() {}

const patternFailed = /Pattern verification failed at offset (\d+)/

/**
 * Reads the output of qemu-io commands (from the program or from HMP's `qemu-io`): the output
 * itself, or a {@link PatternMismatchError} when a pattern did not verify.
 *
 * @since 0.2.0
 * @category combinators
 */
export const verifyOutput = (
  image: string,
  commands: ReadonlyArray<string>,
  output: string
): Either.Either<string, PatternMismatchError> => {
  const failed = patternFailed.exec(output)
  if (failed === null) return Either.right(output)
  const offset = BigInt(failed[1])
  return Either.left(
    new PatternMismatchError({
      image,
      commands,
      offset: offset > BigInt(Number.MAX_SAFE_INTEGER) ? offset : Number(offset),
      output
    })
  )
}

const argError = (operation: string, field: string, detail: string) =>
  new ImageArgumentError({ tool: "qemu-io", operation, field, detail })

const optionArgs = (options: RunOptions): ReadonlyArray<string> => [
  ...(options.format === undefined ? [] : ["-f", options.format]),
  ...(options.readOnly === true ? ["-r"] : []),
  ...(options.snapshot === true ? ["-s"] : []),
  ...(options.cache === undefined ? [] : ["-t", options.cache])
]

const run = (settings: Tool.ToolSettings) =>
(
  image: string,
  commands: string | ReadonlyArray<string>,
  options: RunOptions = {}
): Effect.Effect<string, QemuIoFailure> =>
  Effect.gen(function*() {
    const list = typeof commands === "string" ? [commands] : commands
    if (list.length === 0) return yield* Effect.fail(argError("run", "commands", "give at least one command"))
    const texts = { image, format: options.format, cache: options.cache }
    for (const [field, value] of Object.entries(texts)) {
      if (value !== undefined) yield* Tool.checkText(settings, "run", field, value)
    }
    for (const [index, command] of list.entries()) yield* Tool.checkText(settings, "run", `commands.${index}`, command)
    const timeout = yield* Tool.callTimeout(settings, "run", options.timeout)
    const args = [...optionArgs(options), ...list.flatMap((command) => ["-c", command]), "--", image]
    const exit = yield* Tool.run(settings, "run", args, timeout)
    const output = yield* verifyOutput(image, list, exit.stdout)
    if (exit.exitCode !== 0) return yield* Effect.fail(Tool.exitError(settings, "run", args, exit))
    return output
  })

/**
 * Makes the qemu-io service: the binary (default `qemu-io` on `PATH`), the timeout of one call
 * (default 5 minutes), the most output one call may produce (default 64 MiB).
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: Tool.ToolServiceOptions = {}): Effect.Effect<QemuIoService, ImageArgumentError> =>
  Effect.map(Tool.toolSettings("qemu-io", options, { timeout: Duration.minutes(5) }), (settings) => ({
    run: run(settings)
  }))

/**
 * A layer of the qemu-io service.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: Tool.ToolServiceOptions = {}): Layer.Layer<QemuIo, ImageArgumentError> =>
  Layer.effect(QemuIo, make(options))

// HMP reads each argument into a buffer of 1024 bytes and cuts a longer one short without a word.
const hmpArgumentBytes = 1023

const hmpQuote = (field: string, value: string): Either.Either<string, ImageArgumentError> => {
  if (value.length === 0 || value.includes("\0")) {
    return Either.left(argError("hmp", field, value.length === 0 ? "must not be empty" : "a NUL cannot be sent"))
  }
  if (Buffer.byteLength(value) > hmpArgumentBytes) {
    return Either.left(argError("hmp", field, `longer than the ${hmpArgumentBytes} bytes HMP reads of an argument`))
  }
  // HMP's quoted strings know the escapes \\ \" \' \n \r and nothing else.
  const escaped = value.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, "\\n").replace(/\r/g, "\\r")
  return Either.right(`"${escaped}"`)
}

/**
 * The HMP command that runs one qemu-io command on a running machine's block device:
 * `qemu-io "<device>" "<command>"`, both quoted and escaped as HMP reads them, for
 * `human-monitor-command`'s `command-line`. `device` names a drive or a node; with `qdev`, a
 * device's id (`-d`). QEMU 7.2 prints the command's output on its own stdout (the machine's
 * `log`) and replies with an empty string; read whichever holds it with {@link verifyOutput}.
 *
 * @since 0.2.0
 * @category constructors
 * @example
 * ```ts
 * import { QemuIo } from "effect-qemu"
 *
 * QemuIo.hmpCommand("drive0", "write -P 0xab 0 64k") // Right('qemu-io "drive0" "write -P 0xab 0 64k"')
 * ```
 */
export const hmpCommand = (
  device: string,
  command: string,
  options: { readonly qdev?: boolean | undefined } = {}
): Either.Either<string, ImageArgumentError> =>
  Either.flatMap(hmpQuote("device", device), (quotedDevice) =>
    Either.map(
      hmpQuote("command", command),
      (quotedCommand) => `qemu-io ${options.qdev === true ? "-d " : ""}${quotedDevice} ${quotedCommand}`
    ))
