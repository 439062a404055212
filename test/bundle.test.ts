import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as esbuild from "esbuild"
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { tempDir } from "./kit/qemu.js"

const source = Path.resolve(import.meta.dirname, "../src/index.ts")
const nodeModules = Path.resolve(import.meta.dirname, "../node_modules")

// A program as a user would bundle it: the library and Effect inlined into one file, run from a
// directory with nothing else in it.
const program = `
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Effect } from "effect"
import { Machine } from ${JSON.stringify(source)}

const file = Path.join(Os.tmpdir(), "bundled-fd-" + process.pid)
Fs.writeFileSync(file, "x")
const fd = Fs.openSync(file, "r")
const main = Effect.scoped(Effect.gen(function*() {
  const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults"] })
  yield* vm.sendFd(fd, "passed")
  yield* vm.execute("closefd", { fdname: "passed" })
  return "sent " + vm.qmp.version
}))
Effect.runPromise(main).then(
  (line) => { console.log(line); Fs.rmSync(file) },
  (error) => { console.error(String(error)); Fs.rmSync(file); process.exit(1) }
)
`

describe("The library bundled with esbuild", () => {
  it.scopedLive(
    "launches a machine and passes it a descriptor from a single-file bundle",
    () =>
      Effect.gen(function*() {
        const directory = yield* tempDir("effect-qemu-bundle-")
        const entry = Path.join(directory, "entry.ts")
        const bundle = Path.join(directory, "out", "main.mjs")
        Fs.writeFileSync(entry, program)
        yield* Effect.promise(() =>
          esbuild.build({
            entryPoints: [entry],
            bundle: true,
            platform: "node",
            format: "esm",
            outfile: bundle,
            nodePaths: [nodeModules],
            logLevel: "error"
          }).finally(() => esbuild.stop())
        )
        Fs.rmSync(entry)
        const output = execFileSync(process.execPath, [bundle], { cwd: Path.dirname(bundle), encoding: "utf8" })
        assert.match(output, /^sent \d+\.\d+\.\d+/)
      }),
    120_000
  )
})
