/**
 * `effect-qemu run`: launches a VM from a config file (a JSON `MachineConfig`) or flags, streams
 * its serial console to stdout, and ends when QEMU does. SIGINT (Ctrl-C) or SIGTERM shuts the
 * machine down gracefully (`quit`, then a kill if it takes longer than `shutdownTimeout`). The exit
 * status is QEMU's: its exit code, 128 + the signal number if a signal ended it, 1 if the
 * shutdown was not clean.
 *
 * ```sh
 * effect-qemu run --config vm.json
 * effect-qemu run --arg -M --arg pc --arg -kernel --arg bzImage --console
 * ```
 *
 * @since 0.2.0
 */
import { Command, Options } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Os from "node:os"
import * as Machine from "../Machine.js"
import * as MachineConfig from "../MachineConfig.js"
import type { MachineConfigInput } from "../MachineConfig.js"
import type { AbnormalShutdown, MachineConfigError } from "../MachineError.js"
import type { ExitStatus } from "../QemuProcess.js"

/**
 * The config file could not be read, is not JSON, or is not a machine configuration.
 *
 * @since 0.2.0
 * @category errors
 */
export class ConfigFileError extends Data.TaggedError("ConfigFileError")<{
  readonly file: string
  /** What is wrong, and where in the file. */
  readonly detail: string
}> {
  get message(): string {
    return `config file ${this.file}: ${this.detail}`
  }
}

/**
 * The options of `effect-qemu run`, as parsed.
 *
 * @since 0.2.0
 * @category models
 */
export interface RunOptions {
  readonly config: Option.Option<string>
  readonly binary: Option.Option<string>
  readonly arg: ReadonlyArray<string>
  readonly console: boolean
}

const options = {
  config: Options.text("config").pipe(
    Options.withPseudoName("FILE"),
    Options.withDescription("A JSON file holding a machine configuration (the fields of MachineConfig)."),
    Options.optional
  ),
  binary: Options.text("binary").pipe(
    Options.withPseudoName("QEMU_BINARY"),
    Options.withDescription("The QEMU binary (overrides the config file's). Default: qemu-system-x86_64."),
    Options.optional
  ),
  arg: Options.text("arg").pipe(
    Options.withPseudoName("QEMU_ARG"),
    Options.withDescription("An argument for QEMU, appended after the config file's args; repeat it."),
    Options.repeated
  ),
  console: Options.boolean("console").pipe(
    Options.withDescription("Give the VM a serial console (if the config file has none) and print it.")
  )
}

const InputFromFile = Schema.encodedSchema(MachineConfig.MachineConfig)

const decodeConfig = (file: string, text: string): Either.Either<MachineConfigInput, ConfigFileError> => {
  const fail = (detail: string) => Either.left(new ConfigFileError({ file, detail }))
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return fail(`not JSON: ${(error as Error).message}`)
  }
  const decoded = Schema.decodeUnknownEither(InputFromFile, { onExcessProperty: "error" })(json)
  if (Either.isRight(decoded)) return Either.right(decoded.right)
  const issue = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)[0]
  const field = issue === undefined || issue.path.length === 0 ? "(root)" : issue.path.map(String).join(".")
  return fail(`field "${field}": ${issue?.message ?? decoded.left.message}`)
}

/**
 * Reads and decodes a config file.
 *
 * @since 0.2.0
 * @category constructors
 */
export const readConfigFile = (file: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(file).pipe(
      Effect.mapError((error) => new ConfigFileError({ file, detail: error.message }))
    )
    return yield* decodeConfig(file, text)
  })

/**
 * The machine configuration the options describe: the config file's, with the flags on top.
 *
 * @since 0.2.0
 * @category constructors
 */
export const machineInput = (given: RunOptions) =>
  Effect.map(
    Option.match(given.config, { onNone: () => Effect.succeed<MachineConfigInput>({}), onSome: readConfigFile }),
    (file): MachineConfigInput => ({
      ...file,
      ...Option.match(given.binary, { onNone: () => ({}), onSome: (binary) => ({ binary }) }),
      args: [...(file.args ?? []), ...given.arg],
      ...(given.console && file.console === undefined ? { console: {} } : {})
    })
  )

/**
 * The exit status that tells how QEMU ended, shell-style: its code, or 128 + the signal's number.
 *
 * @since 0.2.0
 * @category constructors
 */
export const exitCodeOf = (status: ExitStatus): number => {
  if (status.code !== null) return status.code
  const number = status.signal === null ? undefined : Os.constants.signals[status.signal]
  return number === undefined ? 1 : 128 + number
}

const describeExit = (exit: Machine.MachineExit): string => {
  const how = exit.status.code !== null ? `with code ${exit.status.code}` : `on signal ${exit.status.signal}`
  const why = Option.match(exit.shutdown, {
    onNone: () => "",
    onSome: (shutdown) => ` (${shutdown.reason}${shutdown.guest ? ", asked by the guest" : ""})`
  })
  return `QEMU exited ${how}${why}`
}

const printConsole = (vm: Machine.MachineService) =>
  vm.console.lines.pipe(Stream.runForEach((line) => Effect.sync(() => process.stdout.write(`${line}\n`))))

/**
 * Reports how the machine ended and sets the exit status; waits (briefly) for the last console
 * lines to be printed first.
 */
const settle = (
  ending: Effect.Effect<Machine.MachineExit, AbnormalShutdown | MachineConfigError>,
  printer: Fiber.Fiber<void>
) =>
  ending.pipe(
    Effect.tap(() => Effect.timeout(Fiber.join(printer), Duration.seconds(2)).pipe(Effect.ignore)),
    Effect.flatMap((exit) =>
      Effect.zipRight(
        Console.error(`effect-qemu: ${describeExit(exit)}`),
        Effect.sync(() => {
          process.exitCode = exitCodeOf(exit.status)
        })
      )
    ),
    Effect.catchAll((error) =>
      Effect.zipRight(
        Console.error(`effect-qemu: ${error.message}`),
        Effect.sync(() => {
          process.exitCode = 1
        })
      )
    )
  )

/**
 * Launches the machine and waits for QEMU to exit; an interruption (SIGINT, SIGTERM) shuts it down
 * gracefully instead.
 *
 * @since 0.2.0
 * @category constructors
 */
export const runMachine = (input: MachineConfigInput) =>
  Effect.scoped(Effect.gen(function*() {
    const vm = yield* Machine.make(input)
    yield* Console.error(`effect-qemu: ${vm.name} running (QEMU pid ${vm.pid}); Ctrl-C shuts it down`)
    const printer = yield* Effect.forkScoped(input.console === undefined ? Effect.void : printConsole(vm))
    yield* vm.process.awaitExit.pipe(
      Effect.onInterrupt(() => settle(vm.shutdown(), printer))
    )
    yield* settle(vm.wait(), printer)
  }))

/**
 * The `run` command.
 *
 * @since 0.2.0
 * @category commands
 */
export const command = Command.make(
  "run",
  options,
  (given) => Effect.flatMap(machineInput(given), runMachine)
).pipe(Command.withDescription("Launch a VM from a config file or flags, print its console, stop it on Ctrl-C."))
