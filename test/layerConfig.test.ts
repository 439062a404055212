import { assert, describe, it } from "@effect/vitest"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Machine from "../src/Machine.js"
import * as Qmp from "../src/Qmp.js"
import { eventually, noneArgs, qemuBinary, rawQemu, tempDir } from "./kit/qemu.js"

const fromEnv = (entries: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(entries))))

describe("layerConfig takes Config.Wrap, as Effect's own layers do", () => {
  it.live("Machine.layerConfig reads each field from its own Config", () =>
    Effect.gen(function*() {
      const live = Machine.layerConfig({
        binary: Config.string("QEMU_BINARY"),
        name: Config.string("VM_NAME").pipe(Config.withDefault("from-config")),
        args: Config.succeed(noneArgs)
      })
      const [name, status] = yield* Effect.provide(
        Effect.flatMap(Machine.Machine, (vm) => Effect.map(vm.execute("query-status"), (s) => [vm.name, s.status])),
        live
      ).pipe(fromEnv({ QEMU_BINARY: qemuBinary }))
      assert.deepStrictEqual([name, status], ["from-config", "running"])
    }))

  it.live("a missing variable fails Machine.layerConfig with Effect's ConfigError", () =>
    Effect.gen(function*() {
      const live = Machine.layerConfig({ binary: Config.string("QEMU_BINARY"), args: Config.succeed(noneArgs) })
      const error = yield* Effect.flip(Effect.provide(Machine.Machine, live).pipe(fromEnv({})))
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(String(error), "QEMU_BINARY")
    }))

  it.scopedLive("Qmp.layerConfig connects to the address a variable names", () =>
    Effect.gen(function*() {
      const path = Path.join(yield* tempDir("effect-qemu-layer-"), "qmp.sock")
      yield* rawQemu(["-qmp", `unix:${path},server=on,wait=off`])
      yield* eventually("QEMU's socket", () => Fs.existsSync(path), 10_000)
      const live = Qmp.layerConfig({
        address: Config.string("QMP_ADDRESS"),
        options: { commandTimeout: Config.succeed("5 seconds") }
      })
      const status = yield* Effect.provide(Effect.flatMap(Qmp.Qmp, (qmp) => qmp.execute("query-status")), live).pipe(
        fromEnv({ QMP_ADDRESS: `unix:${path}` })
      )
      assert.strictEqual(status.status, "running")
    }))

  it.live("an address that is neither unix: nor tcp: is a ConfigError saying what to write", () =>
    Effect.gen(function*() {
      const live = Qmp.layerConfig({ address: Config.string("QMP_ADDRESS") })
      const error = yield* Effect.flip(Effect.provide(Qmp.Qmp, live).pipe(fromEnv({ QMP_ADDRESS: "/run/qmp.sock" })))
      assert.strictEqual(error._tag, "ConfigError")
      assert.include(String(error), "is not unix:PATH or tcp:HOST:PORT")
    }))
})
