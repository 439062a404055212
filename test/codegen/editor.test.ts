import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

// What an editor shows, asked of TypeScript's language service as an editor asks it, on a file
// that uses the client the way an application does.
const root = fileURLToPath(new URL("../..", import.meta.url))
const file = Path.join(root, "test/codegen/__editor_probe__.ts")
const source = `import type { QmpClient } from "../../src/Qmp.js"
declare const qmp: QmpClient
qmp.execute("query-sta")
qmp.waitEvent("BLOCK_JOB_")
qmp.executeAndWait("device_del", { args: { id: "n" }, event: "DEVICE_DEL" })
qmp.executeAndWait("device_del", { args: { id: "n" }, event: "DEVICE_DELETED", match: { data: { dev: "n" } } })
qmp.execute("block-commit", { device: "d0", base: "/b.qcow2" })
`

const service = () => {
  const config = ts.getParsedCommandLineOfConfigFile(Path.join(root, "tsconfig.json"), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: () => {}
  })!
  const host: ts.LanguageServiceHost = {
    getScriptFileNames: () => [file],
    getScriptVersion: () => "1",
    getScriptSnapshot: (name) =>
      name === file
        ? ts.ScriptSnapshot.fromString(source)
        : Fs.existsSync(name)
        ? ts.ScriptSnapshot.fromString(Fs.readFileSync(name, "utf8"))
        : undefined,
    getCurrentDirectory: () => root,
    getCompilationSettings: () => config.options,
    getDefaultLibFileName: (options) => ts.getDefaultLibFilePath(options),
    fileExists: (name) => name === file || ts.sys.fileExists(name),
    readFile: (name) => name === file ? source : ts.sys.readFile(name),
    readDirectory: ts.sys.readDirectory,
    directoryExists: ts.sys.directoryExists,
    getDirectories: ts.sys.getDirectories
  }
  return ts.createLanguageService(host)
}

const completionsAt = (languageService: ts.LanguageService, marker: string): Array<string> => {
  const position = source.indexOf(marker) + marker.length
  return (languageService.getCompletionsAtPosition(file, position, {})?.entries ?? []).map((entry) => entry.name)
}

describe("editor help on the client's names", () => {
  it.effect("completes command, event and event-member names, and flags misspelt ones", () =>
    Effect.sync(() => {
      const languageService = service()
      assert.include(completionsAt(languageService, `qmp.execute("query-sta`), "query-status")
      assert.include(completionsAt(languageService, `qmp.waitEvent("BLOCK_JOB_`), "BLOCK_JOB_COMPLETED")
      assert.include(completionsAt(languageService, `event: "DEVICE_DEL`), "DEVICE_DELETED")
      assert.include(completionsAt(languageService, `match: { data: { dev`), "device")
      const errors = languageService.getSemanticDiagnostics(file).map((diagnostic) =>
        source.slice(diagnostic.start, diagnostic.start! + diagnostic.length!)
      )
      // The misspelt event is reported on the `event` member that holds it.
      assert.deepStrictEqual(errors, [`"query-sta"`, `"BLOCK_JOB_"`, "event", "dev"])
    }), 120_000)

  it.effect("shows a member QEMU marks deprecated as deprecated where it is written", () =>
    Effect.sync(() => {
      const languageService = service()
      // block-commit's `base` (a file name) is deprecated for `base-node`.
      const hover = languageService.getQuickInfoAtPosition(file, source.indexOf("base: ") + 1)
      assert.deepStrictEqual(hover?.tags?.map((tag) => tag.name), ["deprecated"])
      const current = languageService.getQuickInfoAtPosition(file, source.indexOf("device: \"d0\"") + 1)
      assert.deepStrictEqual(current?.tags ?? [], [])
    }), 120_000)
})
