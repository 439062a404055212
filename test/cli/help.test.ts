import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { root, runCli } from "../kit/cli.js"

const packageVersion = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")).version as string

describe("effect-qemu --help and --version", () => {
  it.live("prints the package's version with --version, and exits 0", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["--version"])
      assert.strictEqual(run.stdout.trim(), packageVersion)
      assert.strictEqual(run.code, 0)
    }), 300_000)

  it.live(
    "prints help naming every command, and each command's options, as plain text when piped; exits 0",
    () =>
      Effect.gen(function*() {
        const [top, codegen, run, qmp] = yield* Effect.all([
          runCli(["--help"]),
          runCli(["codegen", "--help"]),
          runCli(["run", "--help"]),
          runCli(["qmp", "--help"])
        ], { concurrency: "unbounded" })
        assert.match(top.stdout, /COMMANDS[\s\S]*- codegen [\s\S]*- run [\s\S]*- qmp /)
        assert.include(
          codegen.stdout,
          "codegen [--binary QEMU_BINARY] [--address unix:PATH|tcp:HOST:PORT] [--schema FILE] [--qemu-version X.Y.Z] --out FILE"
        )
        assert.include(run.stdout, "run [--config FILE] [--binary QEMU_BINARY] --arg QEMU_ARG... [--console]")
        assert.include(qmp.stdout, "qmp --address unix:PATH|tcp:HOST:PORT [--history FILE]")
        for (const help of [top, codegen, run, qmp]) {
          assert.strictEqual(help.code, 0)
          assert.include(help.stdout, `effect-qemu ${packageVersion}`)
          assert.notInclude(help.stdout, "\x1b[")
        }
      }),
    300_000
  )

  it.live(
    "refuses an unknown command or option with exit status 1 and names what is known",
    () =>
      Effect.gen(function*() {
        const [command, option] = yield* Effect.all([
          runCli(["bogus"]),
          runCli(["qmp", "--address", "unix:/nonexistent", "--bogus"])
        ], { concurrency: "unbounded" })
        assert.strictEqual(command.code, 1)
        assert.include(command.stderr, "use one of 'codegen', 'run', 'qmp'")
        assert.strictEqual(option.code, 1)
        assert.include(option.stderr, "--bogus")
      }),
    300_000
  )

  it.live("says what is wrong with a qmp address, with exit status 1", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["qmp", "--address", "/run/qmp.sock"])
      assert.include(run.stderr, `effect-qemu: "/run/qmp.sock" is not unix:PATH or tcp:HOST:PORT`)
      assert.strictEqual(run.code, 1)
    }), 300_000)
})
