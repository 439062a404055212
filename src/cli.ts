/**
 * The `effect-qemu` command line. One command for now:
 *
 * ```sh
 * effect-qemu codegen --binary qemu-system-x86_64 --out src/qemu-surface.ts [--register effect-qemu/QmpCommands]
 * effect-qemu codegen --address unix:/run/vm/qmp.sock --out src/qemu-surface.ts
 * effect-qemu codegen --schema qemu-10.0.json --qemu-version 10.0.0 --out src/qemu-surface.ts
 * ```
 *
 * writes the typed QMP surface of a QEMU (as `.ts`, or as `.js` + `.d.ts` when `--out` ends in `.js`,
 * which costs the type checks of the program that imports it much less): a binary (started with an empty machine for the call),
 * a running QEMU's monitor (`unix:PATH` or `tcp:HOST:PORT`), or a saved `query-qmp-schema` reply.
 * With `--register MODULE`, the written module also registers itself as the surface `execute`
 * and `waitEvent` use (see `QmpSurfaceRegistry`).
 *
 * @since 0.1.0
 */
import { FileSystem, Path } from "@effect/platform"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Data, Effect, Either } from "effect"
import { toJsAndDeclarations } from "./codegen/Emit.js"
import { generate } from "./codegen/Generate.js"
import { parseVersion, probe, probeAddress, readSchemaFile } from "./codegen/Probe.js"
import type { QemuVersion } from "./QmpIntrospection.js"

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

const usage = "usage: effect-qemu codegen (--binary QEMU_BINARY | --address unix:PATH|tcp:HOST:PORT | " +
  "--schema FILE [--qemu-version X.Y.Z]) --out FILE [--register MODULE] [--timeout SECONDS]"

/**
 * The options of `effect-qemu codegen`.
 *
 * @since 0.1.0
 * @category models
 */
export interface CodegenArgs {
  /** Where the schema comes from: exactly one of a binary, a monitor address or a file. */
  readonly source:
    | { readonly _tag: "Binary"; readonly binary: string }
    | { readonly _tag: "Address"; readonly address: string }
    | { readonly _tag: "File"; readonly file: string; readonly version: QemuVersion | undefined }
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
      if (!flags.includes(flag)) {
        return Effect.fail(new UsageError({ detail: `unknown option ${flag}` }))
      }
      if (value === undefined) return Effect.fail(new UsageError({ detail: `${flag} needs a value` }))
      values.set(flag, value)
    }
    const out = values.get("--out")
    if (out === undefined) return Effect.fail(new UsageError({ detail: "--out is required" }))
    const sources = ["--binary", "--address", "--schema"].filter((flag) => values.has(flag))
    if (sources.length !== 1) {
      return Effect.fail(new UsageError({ detail: "give exactly one of --binary, --address and --schema" }))
    }
    const versionText = values.get("--qemu-version")
    if (versionText !== undefined && !values.has("--schema")) {
      return Effect.fail(new UsageError({ detail: "--qemu-version goes with --schema (QEMU says its own otherwise)" }))
    }
    const version = versionText === undefined ? Either.right(undefined) : parseVersion(versionText)
    if (Either.isLeft(version)) return Effect.fail(new UsageError({ detail: `--qemu-version: ${version.left}` }))
    const timeoutSeconds = Number(values.get("--timeout") ?? "30")
    if (!(timeoutSeconds > 0)) return Effect.fail(new UsageError({ detail: "--timeout must be a positive number" }))
    const binary = values.get("--binary")
    const address = values.get("--address")
    const file = values.get("--schema")
    const source: CodegenArgs["source"] = binary !== undefined
      ? { _tag: "Binary", binary }
      : address !== undefined
      ? { _tag: "Address", address }
      : { _tag: "File", file: file!, version: version.right }
    return Effect.succeed({ source, out, register: values.get("--register"), timeoutSeconds })
  })

const flags = ["--binary", "--address", "--schema", "--qemu-version", "--out", "--register", "--timeout"]

/**
 * Reads the schema from where the arguments say, generates the surface and writes it, creating
 * the directory if needed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const codegen = (args: CodegenArgs) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    const timeout = `${args.timeoutSeconds} seconds` as const
    const { schema, version } = yield* (args.source._tag === "Binary"
      ? probe({ binary: args.source.binary, timeout })
      : args.source._tag === "Address"
      ? probeAddress({ address: args.source.address, timeout })
      : readSchemaFile({ file: args.source.file, version: args.source.version }))
    const { coverage, source } = generate(schema, { version, register: args.register })
    yield* fs.makeDirectory(path.dirname(args.out), { recursive: true })
    if (args.out.endsWith(".js")) {
      // A .js output comes with its declarations, which is cheaper for the user's type checks.
      const { dts, js } = yield* toJsAndDeclarations(source)
      yield* fs.writeFileString(args.out, js)
      yield* fs.writeFileString(args.out.replace(/\.js$/, ".d.ts"), dts)
    } else {
      yield* fs.writeFileString(args.out, source)
    }
    yield* Console.log(
      `${args.out}: QEMU ${
        version?.number ?? "(version not given)"
      }, ${coverage.typedCommands}/${coverage.commands} commands and ` +
        `${coverage.typedEvents}/${coverage.events} events typed; ${coverage.types} introspection types ` +
        `merged into ${coverage.shapes} named shapes`
    )
  })

/**
 * The whole command line for the given arguments: parse, run, print errors. Running it is the
 * `effect-qemu` binary's job (`bin.ts`): importing this module runs nothing.
 *
 * @since 0.2.0
 * @category constructors
 */
export const main = (argv: ReadonlyArray<string>) =>
  parseArgs(argv).pipe(
    Effect.flatMap(codegen),
    Effect.tapError((error) => Console.error(error.message)),
    Effect.provide(NodeContext.layer)
  )

/**
 * Runs {@link main} on this process's arguments, with Node's runtime (exit code, signals).
 *
 * @since 0.2.0
 * @category constructors
 */
export const run = (): void => NodeRuntime.runMain(main(process.argv.slice(2)), { disableErrorReporting: true })
