import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { floppyBootArgs, poweroffGuest, writeGuest } from "../../src/TinyGuest.js"
import { cliCommand, eventually, runCli, startCli, tmux } from "../kit/cli.js"
import { isRunning } from "../kit/qemu.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "cli-run-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const emptyMachine = ["-M", "none", "-nodefaults", "-display", "none"]
const asFlags = (args: ReadonlyArray<string>) => args.flatMap((arg) => ["--arg", arg])

describe("effect-qemu run", () => {
  it.scopedLive(
    "launches a config file's VM, prints its console, and exits 0 when the guest powers off",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const image = yield* writeGuest(dir, poweroffGuest("hello from the guest"))
        const config = Path.join(dir, "vm.json")
        Fs.writeFileSync(config, JSON.stringify({ args: floppyBootArgs(image), console: {}, name: "cli-run" }))
        const run = yield* runCli(["run", "--config", config])
        assert.include(run.stdout, "hello from the guest\n")
        assert.include(run.stderr, "QEMU exited with code 0 (guest-shutdown, asked by the guest)")
        assert.strictEqual(run.code, 0)
      }),
    300_000
  )

  it.scopedLive(
    "exits with QEMU's exit status: 7 from a guest that writes 3 to isa-debug-exit",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const image = yield* writeGuest(dir, poweroffGuest("exiting with 3", 3))
        const run = yield* runCli([
          "run",
          ...asFlags([...floppyBootArgs(image), "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]),
          "--console"
        ])
        assert.include(run.stdout, "exiting with 3\n")
        assert.include(run.stderr, "QEMU exited with code 7")
        assert.strictEqual(run.code, 7)
      }),
    300_000
  )

  it.scopedLive("shuts the VM down gracefully on SIGINT: exit status 0, no QEMU left", () =>
    Effect.gen(function*() {
      const run = yield* startCli(["run", ...asFlags(emptyMachine)])
      const started = yield* eventually(run.stderr, /QEMU pid (\d+)/)
      const qemuPid = Number(/QEMU pid (\d+)/.exec(started)![1])
      assert.strictEqual(isRunning(qemuPid), true)
      run.child.kill("SIGINT")
      const exit = yield* run.exited
      assert.include(run.stderr(), "QEMU exited with code 0 (host-qmp-quit)")
      assert.deepStrictEqual(exit, { code: 0, signal: null })
      assert.strictEqual(isRunning(qemuPid), false)
    }), 300_000)

  it.scopedLive(
    "Ctrl-C in a terminal reaches effect-qemu alone, which shuts the VM down: status 0, no QEMU left",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const term = yield* tmux(dir, cliCommand(["run", ...asFlags(emptyMachine)]))
        const started = yield* eventually(term.screen, /QEMU pid (\d+)/)
        const qemuPid = Number(/QEMU pid (\d+)/.exec(started)![1])
        yield* term.keys("C-c")
        // QEMU runs in a process group of its own: had the terminal's SIGINT reached it, it would
        // have ended on that signal (reason host-signal) instead of the quit sent to it.
        yield* eventually(term.screen, /QEMU exited with code 0 \(host-qmp-quit\)\nEXIT=0/)
        assert.isFalse(isRunning(qemuPid))
      }),
    300_000
  )

  it.scopedLive(
    "refuses a config file that is no machine configuration, says where, and starts nothing",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const config = Path.join(dir, "vm.json")
        Fs.writeFileSync(config, JSON.stringify({ args: ["-M", "none"], consol: {} }))
        const misspelt = yield* runCli(["run", "--config", config])
        assert.strictEqual(misspelt.code, 1)
        assert.include(misspelt.stderr, `config file ${config}: field "consol"`)
        Fs.writeFileSync(config, "{ args: [] }")
        const notJson = yield* runCli(["run", "--config", config])
        assert.strictEqual(notJson.code, 1)
        assert.include(notJson.stderr, `config file ${config}: not JSON`)
        const missing = yield* runCli(["run", "--config", Path.join(dir, "absent.json")])
        assert.strictEqual(missing.code, 1)
        assert.include(missing.stderr, `config file ${Path.join(dir, "absent.json")}`)
        for (const run of [misspelt, notJson, missing]) assert.notInclude(run.stderr, "running (QEMU pid")
      }),
    300_000
  )
})
