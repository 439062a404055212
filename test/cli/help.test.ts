import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { root, runCli } from "../kit/cli.js"

const packageVersion = JSON.parse(Fs.readFileSync(Path.join(root, "package.json"), "utf8")).version as string

describe("effect-qemu --help and --version", () => {
  it.live("prints the package's version with --version, and exits 0", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["--version"])
      expect(run.stdout.trim()).toBe(packageVersion)
      expect(run.code).toBe(0)
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
        expect(top.stdout).toMatch(/COMMANDS[\s\S]*- codegen [\s\S]*- run [\s\S]*- qmp /)
        expect(codegen.stdout).toContain(
          "codegen [--binary QEMU_BINARY] [--address unix:PATH|tcp:HOST:PORT] [--schema FILE] [--qemu-version X.Y.Z] --out FILE"
        )
        expect(run.stdout).toContain("run [--config FILE] [--binary QEMU_BINARY] --arg QEMU_ARG... [--console]")
        expect(qmp.stdout).toContain("qmp --address unix:PATH|tcp:HOST:PORT [--history FILE]")
        for (const help of [top, codegen, run, qmp]) {
          expect(help.code).toBe(0)
          expect(help.stdout).toContain(`effect-qemu ${packageVersion}`)
          expect(help.stdout).not.toContain("\x1b[")
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
        expect(command.code).toBe(1)
        expect(command.stderr).toContain("use one of 'codegen', 'run', 'qmp'")
        expect(option.code).toBe(1)
        expect(option.stderr).toContain("--bogus")
      }),
    300_000
  )

  it.live("says what is wrong with a qmp address, with exit status 1", () =>
    Effect.gen(function*() {
      const run = yield* runCli(["qmp", "--address", "/run/qmp.sock"])
      expect(run.stderr).toContain(`effect-qemu: "/run/qmp.sock" is not unix:PATH or tcp:HOST:PORT`)
      expect(run.code).toBe(1)
    }), 300_000)
})
