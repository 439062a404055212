#!/usr/bin/env node
/**
 * The `effect-qemu` command line. One command for now:
 *
 * ```sh
 * effect-qemu codegen --binary qemu-system-x86_64 --out src/qemu-surface.ts [--register effect-qemu/QmpCommands]
 * ```
 *
 * writes the typed QMP surface of the given binary. With `--register MODULE`, the written module
 * also registers itself as the surface `execute` and `waitEvent` use (see `QmpSurfaceRegistry`).
 *
 * @since 0.1.0
 */
import { FileSystem, Path } from "@effect/platform"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Data, Effect } from "effect"
import { generate } from "./codegen/Generate.js"
import { probe } from "./codegen/Probe.js"

/**
 * The command line did not make sense.
 *
 * @since 0.1.0
 * @category errors
 */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly detail: string }> {
  get message(): string {
    return `${this.detail}\n\n${usage}`
  }
}

const usage = "usage: effect-qemu codegen --binary QEMU_BINARY --out FILE [--register MODULE] [--timeout SECONDS]"

/**
 * The options of `effect-qemu codegen`.
 *
 * @since 0.1.0
 * @category models
 */
export interface CodegenArgs {
  readonly binary: string
  readonly out: string
  readonly register: string | undefined
  readonly timeoutSeconds: number
}

/**
 * Parses `codegen --binary B --out F ...`; every option takes a value.
 *
 * @since 0.1.0
 * @category constructors
 */
export const parseArgs = (argv: ReadonlyArray<string>): Effect.Effect<CodegenArgs, UsageError> =>
  Effect.suspend(() => {
    const [command, ...rest] = argv
    if (command !== "codegen") return Effect.fail(new UsageError({ detail: `unknown command ${command ?? "(none)"}` }))
    const values = new Map<string, string>()
    for (let i = 0; i < rest.length; i += 2) {
      const flag = rest[i]
      const value = rest[i + 1]
      if (!["--binary", "--out", "--register", "--timeout"].includes(flag)) {
        return Effect.fail(new UsageError({ detail: `unknown option ${flag}` }))
      }
      if (value === undefined) return Effect.fail(new UsageError({ detail: `${flag} needs a value` }))
      values.set(flag, value)
    }
    const binary = values.get("--binary")
    const out = values.get("--out")
    if (binary === undefined || out === undefined) {
      return Effect.fail(new UsageError({ detail: "--binary and --out are required" }))
    }
    const timeoutSeconds = Number(values.get("--timeout") ?? "30")
    if (!(timeoutSeconds > 0)) return Effect.fail(new UsageError({ detail: "--timeout must be a positive number" }))
    return Effect.succeed({ binary, out, register: values.get("--register"), timeoutSeconds })
  })

/**
 * Probes the binary, generates the surface and writes it, creating the directory if needed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const codegen = (args: CodegenArgs) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const { schema, version } = yield* probe({ binary: args.binary, timeout: `${args.timeoutSeconds} seconds` })
    const { coverage, source } = generate(schema, { version, register: args.register })
    yield* fs.makeDirectory(path.dirname(args.out), { recursive: true })
    yield* fs.writeFileString(args.out, source)
    yield* Console.log(
      `${args.out}: QEMU ${version.number}, ${coverage.typedCommands}/${coverage.commands} commands and ` +
        `${coverage.typedEvents}/${coverage.events} events typed; ${coverage.types} introspection types ` +
        `merged into ${coverage.shapes} named shapes`
    )
  })

const main = parseArgs(process.argv.slice(2)).pipe(
  Effect.flatMap(codegen),
  Effect.tapError((error) => Console.error(error.message)),
  Effect.provide(NodeContext.layer)
)

NodeRuntime.runMain(main, { disableErrorReporting: true })
