/**
 * `effect-qemu codegen`: writes the typed QMP surface of a QEMU.
 *
 * ```sh
 * effect-qemu codegen --binary qemu-system-x86_64 --out src/qemu-surface.ts [--register effect-qemu/QmpCommands]
 * effect-qemu codegen --address unix:/run/vm/qmp.sock --out src/qemu-surface.ts
 * effect-qemu codegen --schema qemu-10.0.json --qemu-version 10.0.0 --out src/qemu-surface.ts
 * ```
 *
 * The schema comes from a binary (started with an empty machine for the call), a running QEMU's
 * monitor (`unix:PATH` or `tcp:HOST:PORT`), or a saved `query-qmp-schema` reply. The surface is
 * written as `.ts`, or as `.js` + `.d.ts` when `--out` ends in `.js` (which costs the type checks
 * of the program that imports it much less). With `--register MODULE`, the written module also
 * registers itself as the surface `execute` and `waitEvent` use (see `QmpSurfaceRegistry`).
 *
 * @since 0.2.0
 */
import { Command, Options } from "@effect/cli"
import { FileSystem, Path } from "@effect/platform"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import { toJsAndDeclarations } from "../codegen/Emit.js"
import { generate } from "../codegen/Generate.js"
import { parseVersion, probe, probeAddress, readSchemaFile } from "../codegen/Probe.js"
import type { QemuVersion } from "../QmpIntrospection.js"
import { UsageError } from "./UsageError.js"

/**
 * The options of `effect-qemu codegen`, checked.
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
 * The options as `@effect/cli` parsed them, before the checks that involve several of them.
 *
 * @since 0.2.0
 * @category models
 */
export interface CodegenOptions {
  readonly binary: Option.Option<string>
  readonly address: Option.Option<string>
  readonly schema: Option.Option<string>
  readonly qemuVersion: Option.Option<string>
  readonly out: string
  readonly register: Option.Option<string>
  readonly timeout: number
}

const options = {
  binary: Options.text("binary").pipe(
    Options.withPseudoName("QEMU_BINARY"),
    Options.withDescription("A QEMU binary to start with an empty machine and ask, e.g. qemu-system-x86_64."),
    Options.optional
  ),
  address: Options.text("address").pipe(
    Options.withPseudoName("unix:PATH|tcp:HOST:PORT"),
    Options.withDescription("The monitor of a running QEMU: unix:PATH or tcp:HOST:PORT."),
    Options.optional
  ),
  schema: Options.text("schema").pipe(
    Options.withPseudoName("FILE"),
    Options.withDescription("A saved query-qmp-schema reply (the whole reply or its return list)."),
    Options.optional
  ),
  qemuVersion: Options.text("qemu-version").pipe(
    Options.withPseudoName("X.Y.Z"),
    Options.withDescription("The QEMU version of a --schema file, e.g. 10.0.0 (QEMU says its own otherwise)."),
    Options.optional
  ),
  out: Options.text("out").pipe(
    Options.withPseudoName("FILE"),
    Options.withDescription("The file to write: .ts, or .js (written with its .d.ts).")
  ),
  register: Options.text("register").pipe(
    Options.withPseudoName("MODULE"),
    Options.withDescription("Also register the surface for this module, e.g. effect-qemu/QmpCommands."),
    Options.optional
  ),
  timeout: Options.float("timeout").pipe(
    Options.withPseudoName("SECONDS"),
    Options.withDescription("Seconds QEMU may take to start, greet and answer."),
    Options.withDefault(30)
  )
}

/**
 * Checks what a single option cannot: exactly one source, a version only with a file, a positive
 * timeout.
 *
 * @since 0.2.0
 * @category constructors
 */
export const checkOptions = (given: CodegenOptions): Either.Either<CodegenArgs, UsageError> => {
  const usage = (detail: string) => Either.left(new UsageError({ detail }))
  const sources = [given.binary, given.address, given.schema].filter(Option.isSome)
  if (sources.length !== 1) return usage("give exactly one of --binary, --address and --schema")
  if (Option.isSome(given.qemuVersion) && Option.isNone(given.schema)) {
    return usage("--qemu-version goes with --schema (QEMU says its own otherwise)")
  }
  const version = Option.match(given.qemuVersion, {
    onNone: () => Either.right(undefined),
    onSome: (text) => parseVersion(text)
  })
  if (Either.isLeft(version)) return usage(`--qemu-version: ${version.left}`)
  if (!(given.timeout > 0)) return usage("--timeout must be a positive number")
  const source: CodegenArgs["source"] = Option.isSome(given.binary)
    ? { _tag: "Binary", binary: given.binary.value }
    : Option.isSome(given.address)
    ? { _tag: "Address", address: given.address.value }
    : { _tag: "File", file: Option.getOrThrow(given.schema), version: version.right }
  return Either.right({
    source,
    out: given.out,
    register: Option.getOrUndefined(given.register),
    timeoutSeconds: given.timeout
  })
}

const readSchema = (args: CodegenArgs) => {
  const timeout = `${args.timeoutSeconds} seconds` as const
  switch (args.source._tag) {
    case "Binary":
      return probe({ binary: args.source.binary, timeout })
    case "Address":
      return probeAddress({ address: args.source.address, timeout })
    case "File":
      return readSchemaFile({ file: args.source.file, version: args.source.version })
  }
}

const write = (out: string, source: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const path = yield* Path.Path
    yield* fs.makeDirectory(path.dirname(out), { recursive: true })
    if (!out.endsWith(".js")) return yield* fs.writeFileString(out, source)
    // A .js output comes with its declarations, which is cheaper for the user's type checks.
    const { dts, js } = yield* toJsAndDeclarations(source)
    yield* fs.writeFileString(out, js)
    yield* fs.writeFileString(out.replace(/\.js$/, ".d.ts"), dts)
  })

/**
 * Reads the schema from where the arguments say, generates the surface and writes it, creating
 * the directory if needed.
 *
 * @since 0.1.0
 * @category constructors
 */
export const codegen = (args: CodegenArgs) =>
  Effect.gen(function*() {
    const { schema, version } = yield* readSchema(args)
    const { coverage, source } = generate(schema, { version, register: args.register })
    yield* write(args.out, source)
    yield* Console.log(
      `${args.out}: QEMU ${
        version?.number ?? "(version not given)"
      }, ${coverage.typedCommands}/${coverage.commands} commands and ` +
        `${coverage.typedEvents}/${coverage.events} events typed; ${coverage.types} introspection types ` +
        `merged into ${coverage.shapes} named shapes`
    )
  })

/**
 * The `codegen` command.
 *
 * @since 0.2.0
 * @category commands
 */
export const command = Command.make(
  "codegen",
  options,
  (given) => Effect.flatMap(checkOptions(given), codegen)
).pipe(Command.withDescription("Write the typed QMP surface of a QEMU binary, a running QEMU or a saved schema."))
