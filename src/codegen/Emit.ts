/**
 * A generated surface as `.js` + `.d.ts` instead of one `.ts` file: a program that imports it then
 * reads declarations only, instead of checking every `Schema` of the surface against its type on
 * each `tsc` run (for QEMU 7.2, this project's own type check takes about half as long).
 *
 * Both files are made from the `.ts` source by TypeScript itself (`transpileModule` and
 * `transpileDeclaration`), so they say exactly what the `.ts` says. TypeScript is loaded only
 * when this runs: it is needed to write the pair, not to use it.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"

/**
 * TypeScript could not be loaded, or it reported a problem in the source.
 *
 * @since 0.1.0
 * @category errors
 */
export class EmitError extends Schema.TaggedError<EmitError>()("EmitError", {
  detail: Schema.String
}) {
  get message(): string {
    return `could not write the surface as .js and .d.ts: ${this.detail}`
  }
}

/**
 * The two files of a surface.
 *
 * @since 0.1.0
 * @category models
 */
export interface Emitted {
  readonly js: string
  readonly dts: string
}

/**
 * Turns the `.ts` source of a surface (what `generate` returns) into its `.js` and `.d.ts`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const toJsAndDeclarations = (source: string): Effect.Effect<Emitted, EmitError> =>
  Effect.gen(function*() {
    const ts = yield* Effect.tryPromise({
      try: () => import("typescript").then((module) => module.default ?? module),
      catch: () =>
        new EmitError({
          detail: "the typescript package is needed for a .js output (npm install -D typescript), or write a .ts file"
        })
    })
    const compilerOptions = { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext }
    const declarations = ts.transpileDeclaration(source, {
      compilerOptions,
      fileName: "surface.ts",
      reportDiagnostics: true
    })
    const problems = declarations.diagnostics ?? []
    if (problems.length > 0) {
      return yield* Effect.fail(
        new EmitError({ detail: ts.flattenDiagnosticMessageText(problems[0].messageText, "\n") })
      )
    }
    const js = ts.transpileModule(source, { compilerOptions, fileName: "surface.ts" }).outputText
    return { js, dts: declarations.outputText }
  })
