import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Machine from "../src/Machine.js"
import * as MachineConfig from "../src/MachineConfig.js"
import { isRunning, noneArgs, tempDir } from "./kit/qemu.js"

const nullDrive = ["-blockdev", "driver=null-co,node-name=drive0"]

const nodeNames = (vm: Machine.MachineService) =>
  Effect.map(
    vm.execute("query-named-block-nodes"),
    (nodes) => (nodes as ReadonlyArray<{ readonly "node-name": string }>).map((node) => node["node-name"])
  )

describe("MachineConfig.extend", () => {
  it("appends args and fds, merges qmpOptions and console, replaces the rest, and leaves the base alone", () => {
    const base: MachineConfig.MachineConfigInput = {
      args: ["-M", "none"],
      fds: [{ fd: 10, set: 1 }],
      qmpOptions: { oob: true, commandTimeout: "5 seconds" },
      console: { drain: true, bufferBytes: 4096 },
      name: "base",
      launchTimeout: "10 seconds"
    }
    const grown = MachineConfig.extend(base, {
      args: ["-S"],
      fds: [{ fd: 11, set: 2 }],
      qmpOptions: { commandTimeout: "1 second" },
      console: { bufferBytes: 8192 },
      launchTimeout: "20 seconds",
      name: undefined
    })
    assert.deepStrictEqual(grown, {
      args: ["-M", "none", "-S"],
      fds: [{ fd: 10, set: 1 }, { fd: 11, set: 2 }],
      qmpOptions: { oob: true, commandTimeout: "1 second" },
      console: { drain: true, bufferBytes: 8192 },
      name: "base",
      launchTimeout: "20 seconds"
    })
    assert.deepStrictEqual(base.args, ["-M", "none"])
    assert.deepStrictEqual(base.qmpOptions, { oob: true, commandTimeout: "5 seconds" })
  })

  it("gives a console to a configuration without one, and lists to one without lists", () => {
    assert.deepStrictEqual(MachineConfig.extend({}, { console: {}, args: ["-S"] }), { console: {}, args: ["-S"] })
    assert.deepStrictEqual(MachineConfig.extend({ args: ["-S"] }, {}), { args: ["-S"] })
  })
})

describe("Machine.relaunch", () => {
  it.scopedLive("stops the machine and launches it again with the grown command line, under the same name", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const first = yield* Machine.make({ args: noneArgs, baseTempDir: dir })
      assert.deepStrictEqual(yield* nodeNames(first), [])
      assert.deepStrictEqual(first.config, { args: noneArgs, baseTempDir: dir, name: first.name })
      const second = yield* Machine.relaunch(first, { args: nullDrive })
      assert.isFalse(isRunning(first.pid))
      assert.isFalse(yield* first.isRunning)
      assert.isTrue(isRunning(second.pid))
      assert.strictEqual(second.name, first.name)
      assert.deepStrictEqual(second.commandLine.slice(-5), [...noneArgs, ...nullDrive])
      assert.deepStrictEqual(yield* nodeNames(second), ["drive0"])
      const third = yield* Machine.relaunch(second)
      assert.deepStrictEqual(yield* nodeNames(third), ["drive0"])
    }))

  it.scopedLive("leaves no QEMU and no temp directory of either launch when the scope closes", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const seen = yield* Effect.scoped(Effect.gen(function*() {
        const first = yield* Machine.make({ args: noneArgs, baseTempDir: dir })
        const second = yield* Machine.relaunch(first, { args: nullDrive })
        return [first, second].map((vm) => ({ pid: vm.pid, tempDir: vm.tempDir }))
      }))
      for (const vm of seen) {
        assert.isFalse(isRunning(vm.pid))
        assert.isFalse(Fs.existsSync(vm.tempDir))
      }
      assert.deepStrictEqual(Fs.readdirSync(dir), [])
    }))

  it.scopedLive("refuses an extension that makes the configuration invalid while the machine keeps running", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const vm = yield* Machine.make({ args: noneArgs, baseTempDir: dir })
      const error = yield* Effect.flip(Machine.relaunch(vm, { args: ["-daemonize"] }))
      assert.strictEqual(error._tag, "MachineConfigError")
      assert.include(error.message, "-daemonize")
      assert.isTrue(isRunning(vm.pid))
      assert.strictEqual(((yield* vm.execute("query-status")) as { status: string }).status, "running")
    }))

  it.scopedLive("fails with the launch's error when the grown command line does not start, leaving nothing running", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const vm = yield* Machine.make({ args: noneArgs, baseTempDir: dir })
      const error = yield* Effect.flip(Machine.relaunch(vm, { args: ["-blockdev", "driver=no-such-driver"] }))
      assert.strictEqual(error._tag, "LaunchError")
      assert.include(error.message, "no-such-driver")
      assert.isFalse(isRunning(vm.pid))
    }))
})
