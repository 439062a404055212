/**
 * The `effect-qemu` command line, on `@effect/cli`:
 *
 * ```sh
 * effect-qemu codegen --binary qemu-system-x86_64 --out src/qemu-surface.ts
 * effect-qemu run --config vm.json            # or: run --arg -M --arg none --console
 * effect-qemu qmp --address unix:/run/vm/qmp.sock
 * effect-qemu --help | --version
 * ```
 *
 * Importing this module runs nothing: the `effect-qemu` binary (`bin.ts`) calls {@link run}.
 *
 * @since 0.1.0
 */
import { Command, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import * as Cause from "effect/Cause"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { createRequire } from "node:module"
import * as Codegen from "./cli/codegen.js"
import * as Qmp from "./cli/qmp.js"
import * as Run from "./cli/run.js"

/**
 * The package's version, as `--version` prints it. Read at run time: `src/` and `dist/` both sit
 * one level below `package.json`.
 *
 * @since 0.2.0
 * @category constants
 */
export const version: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version

/**
 * The `effect-qemu` command and its subcommands. Without a subcommand it prints its help.
 *
 * @since 0.2.0
 * @category commands
 */
export const command = Command.make("effect-qemu").pipe(
  Command.withDescription("Launch, drive and inspect QEMU virtual machines."),
  Command.withSubcommands([Codegen.command, Run.command, Qmp.command])
)

const cli = Command.run(command, { name: "effect-qemu", version })

const ansiStyle = /\x1b\[[0-9;]*m/g

const styled = (stream: NodeJS.WriteStream) => stream.isTTY === true && process.env.NO_COLOR === undefined

const plain = (args: ReadonlyArray<unknown>) =>
  args.map((arg) => typeof arg === "string" ? arg.replace(ansiStyle, "") : arg)

// @effect/cli styles its help and errors for a terminal: anywhere else (a pipe, a file, NO_COLOR)
// they go out as plain text.
const withPlainText = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.consoleWith((base) =>
    Console.withConsole(effect, {
      ...base,
      log: (...args) => base.log(...(styled(process.stdout) ? args : plain(args))),
      error: (...args) => base.error(...(styled(process.stderr) ? args : plain(args)))
    })
  )

// @effect/cli prints its own parse errors with the help; the commands' errors are printed here.
const report = (error: unknown) =>
  ValidationError.isValidationError(error)
    ? Effect.void
    : Console.error(`effect-qemu: ${error instanceof Error ? error.message : String(error)}`)

/**
 * The whole command line for the given arguments (without `node` and the script): parse, run,
 * print errors. A command that wants a particular exit status sets `process.exitCode`.
 *
 * @since 0.2.0
 * @category constructors
 */
export const main = (argv: ReadonlyArray<string>) =>
  cli(["node", "effect-qemu", ...argv]).pipe(
    Effect.tapError(report),
    Effect.tapDefect((cause) => Console.error(Cause.pretty(cause))),
    withPlainText,
    Effect.provide(NodeContext.layer)
  )

/**
 * The exit status of a finished command line: 1 for a failure; what the command set, if it did;
 * 130 (as a shell reports SIGINT) for a command cut short by a signal; 0 otherwise.
 *
 * @since 0.2.0
 * @category constructors
 */
export const exitStatus = (exit: Exit.Exit<unknown, unknown>, set: number | string | undefined): number => {
  if (Exit.isSuccess(exit)) return Number(set ?? 0)
  return Cause.isInterruptedOnly(exit.cause) ? Number(set ?? 130) : 1
}

/**
 * Runs {@link main} on this process's arguments with Node's runtime: SIGINT and SIGTERM interrupt
 * the command, which cleans up after itself (`run` shuts its machine down and reports how QEMU
 * ended); see {@link exitStatus} for the exit status.
 *
 * @since 0.2.0
 * @category constructors
 */
export const run = (): void =>
  NodeRuntime.runMain(main(process.argv.slice(2)), {
    disableErrorReporting: true,
    teardown: (exit, onExit) => onExit(exitStatus(exit, process.exitCode))
  })
