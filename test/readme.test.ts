import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Path from "node:path"
import ts from "typescript"

const root = Path.resolve(import.meta.dirname, "..")
const readme = Fs.readFileSync(Path.join(root, "README.md"), "utf8")

/** The `ts` code blocks of a README section, with the README line each one starts on. */
const blocksOf = (heading: string): Array<{ readonly line: number; readonly code: string }> => {
  const lines = readme.split("\n")
  const start = lines.indexOf(heading)
  if (start === -1) throw new Error(`no "${heading}" in README.md`)
  const level = heading.split(" ")[0]
  const blocks: Array<{ line: number; code: string }> = []
  let open: { line: number; code: Array<string> } | undefined
  for (let index = start + 1; index < lines.length; index++) {
    const line = lines[index]
    if (open === undefined && line.startsWith(`${level} `)) break
    if (open === undefined && line === "```ts") open = { line: index + 2, code: [] }
    else if (open !== undefined && line === "```") {
      blocks.push({ line: open.line, code: open.code.join("\n") })
      open = undefined
    } else open?.code.push(line)
  }
  return blocks
}

/** What a block may use without importing it, as the text around it says. */
const givens = [
  ["Effect", "import { Effect } from \"effect\""],
  ["Machine", "import { Machine } from \"effect-qemu\""],
  ["Shell", "import { Shell } from \"effect-qemu\""],
  ["Wait", "import { Wait } from \"effect-qemu\""],
  ["GuestAgent", "import { GuestAgent } from \"effect-qemu\""]
] as const

/**
 * A block as a module: its imports on top (the package's name pointing at the sources), the rest
 * as the body of an `Effect.gen` in which a machine `vm`, its `args` and a guest's `kernel` and
 * `initrd` are given.
 */
const moduleOf = (code: string): { readonly text: string; readonly prelude: number } => {
  const lines = code.split("\n")
  const imports = lines.filter((line) => line.startsWith("import "))
  const body = lines.filter((line) => !line.startsWith("import "))
  const imported = imports.join("\n")
  const head = [
    ...imports,
    ...givens.filter(([name]) => !new RegExp(`\\b${name}\\b`).test(imported)).map(([, line]) => line),
    "import type { MachineService as GivenMachine } from \"effect-qemu/Machine\"",
    "declare const vm: GivenMachine",
    "declare const args: ReadonlyArray<string>",
    "declare const kernel: string",
    "declare const initrd: string",
    "export const example = Effect.gen(function*() {"
  ].map((line) =>
    line.replaceAll("\"effect-qemu\"", "\"../src/index.js\"").replace(/"effect-qemu\/(\w+)"/, "\"../src/$1.js\"")
  )
  return { text: [...head, ...body, "})", ""].join("\n"), prelude: head.length - imports.length }
}

/** Type-checks the given modules, placed in test/, with the project's compiler options. */
const typeCheck = (modules: ReadonlyMap<string, string>): Array<ts.Diagnostic> => {
  const config = ts.getParsedCommandLineOfConfigFile(Path.join(root, "tsconfig.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"))
    }
  })!
  // a snippet may well leave a value unused
  const options = { ...config.options, noUnusedLocals: false, noUnusedParameters: false, noEmit: true }
  const host = ts.createCompilerHost(options)
  const { fileExists, getSourceFile, readFile } = host
  host.fileExists = (file) => modules.has(file) || fileExists(file)
  host.readFile = (file) => modules.get(file) ?? readFile(file)
  host.getSourceFile = (file, language, ...rest) => {
    const text = modules.get(file)
    return text === undefined ? getSourceFile(file, language, ...rest) : ts.createSourceFile(file, text, language)
  }
  const program = ts.createProgram([...modules.keys()], options, host)
  return [...modules.keys()].flatMap((file) => {
    const source = program.getSourceFile(file)!
    return [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
  })
}

describe("README", () => {
  it("every example of 'Inside the guest' type-checks against the sources", { timeout: 120_000 }, () => {
    const blocks = blocksOf("## Inside the guest")
    // the shell, the guest agent, forwarded ports and the wait strategies
    assert.isAtLeast(blocks.length, 4)
    const files = blocks.map((block, index) => ({
      ...block,
      ...moduleOf(block.code),
      file: Path.join(root, "test", `readme-example-${index}.ts`)
    }))
    const diagnostics = typeCheck(new Map(files.map((file) => [file.file, file.text])))
    const problems = diagnostics.map((diagnostic) => {
      const file = files.find((candidate) => candidate.file === diagnostic.file?.fileName)
      const position = diagnostic.file !== undefined && diagnostic.start !== undefined
        ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line
        : 0
      const imports = file?.code.split("\n").filter((line) => line.startsWith("import ")).length ?? 0
      // lines of the block before its body are its imports; the prelude sits between them and it
      const line = file === undefined
        ? "?"
        : position < imports
        ? file.line + position
        : file.line + position - file.prelude
      return `README.md:${line}: ${ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")}`
    })
    assert.deepStrictEqual(problems, [])
  })
})
