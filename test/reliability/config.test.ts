/**
 * Bad configuration is refused before anything is spawned or created on disk, naming the field;
 * and what a machine puts on disk or on the network is private to its user.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Machine from "../../src/Machine.js"
import { noneArgs } from "../kit/qemu.js"
import { baseDir, expectNoChildren } from "./kit.js"

describe("Bad configuration", () => {
  /**
   * Makes the machine in a fresh base directory (after `config` prepared what it needs there) and checks that it fails with `tag` naming
   * `field`, that no process was started, and that the directory was never written to (its
   * mtime would change even for an entry created and removed again).
   */
  const refused = (
    name: string,
    config: (dir: string) => Machine.MachineConfigInput,
    expected: { readonly tag: "MachineConfigError" | "LaunchError"; readonly field: string; readonly reason?: string }
  ) =>
    it.scopedLive(`${name}: ${expected.tag} naming ${expected.field}, nothing spawned or created`, () =>
      Effect.gen(function*() {
        const dir = yield* baseDir
        const input: Machine.MachineConfigInput = { baseTempDir: dir, ...config(dir) }
        const entries = Fs.readdirSync(dir)
        const past = new Date(Date.now() - 60_000)
        Fs.utimesSync(dir, past, past)
        const before = Fs.statSync(dir).mtimeMs
        const exit = yield* Effect.exit(Effect.scoped(Machine.make(input)))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit)) {
          const error = Option.getOrThrow(Cause.failureOption(exit.cause))
          assert.strictEqual(error._tag, expected.tag, error.message)
          if (error._tag === "MachineConfigError") assert.strictEqual(error.field, expected.field, error.message)
          if (error._tag === "LaunchError") {
            assert.strictEqual(error.reason, expected.reason)
            assert.isTrue(error.detail.startsWith(`${expected.field}: `), error.detail)
            assert.deepStrictEqual(error.commandLine, [])
          }
          assert.include(error.message, expected.field)
        }
        yield* expectNoChildren(0)
        assert.deepStrictEqual(Fs.readdirSync(dir), entries)
        assert.strictEqual(Fs.statSync(dir).mtimeMs, before, "the base temp dir was written to")
      }))

  refused("an empty binary", () => ({ binary: "" }), { tag: "MachineConfigError", field: "binary" })
  refused("a binary not on PATH", () => ({ binary: "qemu-system-none" }), {
    tag: "LaunchError",
    field: "binary",
    reason: "BinaryNotFound"
  })
  refused("a binary path that does not exist", () => ({ binary: "/nonexistent/qemu" }), {
    tag: "LaunchError",
    field: "binary",
    reason: "BinaryNotFound"
  })
  refused("a directory as binary", (dir) => ({ binary: dir }), {
    tag: "LaunchError",
    field: "binary",
    reason: "NotExecutable"
  })
  refused("a wrapper that does not exist", () => ({ wrapper: ["no-such-wrapper"], args: noneArgs }), {
    tag: "LaunchError",
    field: "wrapper",
    reason: "BinaryNotFound"
  })
  refused("a relative temp dir that does not exist", () => ({ baseTempDir: "no/such/relative/dir" }), {
    tag: "MachineConfigError",
    field: "baseTempDir"
  })
  refused("a file as temp dir", () => ({ baseTempDir: "/dev/null" }), {
    tag: "MachineConfigError",
    field: "baseTempDir"
  })
  refused("a UNIX socket path over 107 bytes", () => ({ monitor: { _tag: "Unix", path: `/tmp/${"s".repeat(103)}` } }), {
    tag: "MachineConfigError",
    field: "monitor.path"
  })
  refused(
    "a sockDir too long for the default socket",
    (dir) => {
      const sockDir = Path.join(dir, "d".repeat(90))
      Fs.mkdirSync(sockDir)
      return { monitor: { _tag: "Unix" }, sockDir }
    },
    { tag: "MachineConfigError", field: "sockDir" }
  )
  refused(
    "a long name that makes the default socket path too long",
    (dir) => ({
      monitor: { _tag: "Unix" },
      // Short enough for `<dir>/effect-qemu-XXXXXX/<name>-qmp.sock`, too long once the name is in the directory too.
      name: "n".repeat(Math.floor((107 - Buffer.byteLength(dir) - "/effect-qemu-XXXXXX/-qmp.sock".length) / 2) + 4)
    }),
    { tag: "MachineConfigError", field: "baseTempDir" }
  )
  refused("a monitor address with qmp off", () => ({ qmp: false, monitor: { _tag: "Tcp" } }), {
    tag: "MachineConfigError",
    field: "monitor"
  })
  refused("oob with qmp off", () => ({ qmp: false, qmpOptions: { oob: true } }), {
    tag: "MachineConfigError",
    field: "qmpOptions.oob"
  })
  refused(
    "a monitor path and a sockDir both given",
    (dir) => ({ monitor: { _tag: "Unix", path: Path.join(dir, "m.sock") }, sockDir: dir }),
    { tag: "MachineConfigError", field: "sockDir" }
  )
  refused(
    "a console log file in a directory that does not exist",
    (dir) => ({ args: noneArgs, console: { logFile: Path.join(dir, "missing", "console.log") } }),
    { tag: "MachineConfigError", field: "console.logFile" }
  )
  refused("a launch timeout that is no duration", () => ({ launchTimeout: "whenever" as never }), {
    tag: "MachineConfigError",
    field: "launchTimeout"
  })
})
