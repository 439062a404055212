import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Path from "node:path"
import { ImageArgumentError, ImageToolError, PatternMismatchError } from "../src/ImageError.js"
import { CommandLine, QemuImg, QemuIo } from "../src/index.js"
import * as Machine from "../src/Machine.js"
import { noneArgs, tempDir } from "./kit/qemu.js"

const scratch = tempDir("effect-qemu-io-test-")

const image = Effect.gen(function*() {
  const img = yield* QemuImg.make()
  const path = Path.join(yield* scratch, "disk.qcow2")
  yield* img.create(path, { format: "qcow2", size: "1M" })
  return path
})

layer(QemuIo.layer(), { excludeTestServices: true })("QemuIo", (it) => {
  it.scoped("a pattern written then read back verifies, and the output is qemu-io's", () =>
    Effect.gen(function*() {
      const io = yield* QemuIo.QemuIo
      const path = yield* image
      const output = yield* io.run(path, ["write -P 0xab 0 64k", "read -P 0xab 0 64k"], { format: "qcow2" })
      assert.include(output, "wrote 65536/65536 bytes at offset 0")
      assert.include(output, "read 65536/65536 bytes at offset 0")
    }))

  it.scoped("a read of another pattern fails with PatternMismatchError at the offset qemu-io reports", () =>
    Effect.gen(function*() {
      const io = yield* QemuIo.QemuIo
      const path = yield* image
      yield* io.run(path, "write -P 0xab 0 64k", { format: "qcow2" })
      const error = yield* Effect.flip(io.run(path, ["read -P 0xab 0 4k", "read -P 0xac 4k 4k"], { format: "qcow2" }))
      assert.instanceOf(error, PatternMismatchError)
      assert.strictEqual(error.offset, 4096)
      assert.include(error.message, "Pattern verification failed at offset 4096")
      assert.deepStrictEqual(error.commands, ["read -P 0xab 0 4k", "read -P 0xac 4k 4k"])
    }))

  it.scoped("a failing command and a missing image fail with qemu-io's own message", () =>
    Effect.gen(function*() {
      const io = yield* QemuIo.QemuIo
      const path = yield* image
      const beyond = yield* Effect.flip(io.run(path, "read 0 8M", { format: "qcow2" }))
      assert.instanceOf(beyond, ImageToolError)
      assert.strictEqual(beyond.exitCode, 1)
      assert.include(beyond.message, "read failed")
      const missing = yield* Effect.flip(io.run(`${path}.nope`, "read 0 4k", { format: "qcow2" }))
      assert.instanceOf(missing, ImageToolError)
      assert.include(missing.stderr, "Could not open")
    }))

  it.scoped("read-only and snapshot runs leave the image as it was", () =>
    Effect.gen(function*() {
      const io = yield* QemuIo.QemuIo
      const path = yield* image
      const readOnly = yield* Effect.flip(io.run(path, "write -P 0x01 0 4k", { format: "qcow2", readOnly: true }))
      assert.instanceOf(readOnly, ImageToolError)
      yield* io.run(path, "write -P 0x02 0 4k", { format: "qcow2", snapshot: true })
      yield* io.run(path, "read -P 0x00 0 4k", { format: "qcow2" })
    }))

  it.effect("no commands, or a NUL in one, is refused before anything runs", () =>
    Effect.gen(function*() {
      const io = yield* QemuIo.QemuIo
      const none = yield* Effect.flip(io.run("/tmp/x", []))
      assert.instanceOf(none, ImageArgumentError)
      const nul = yield* Effect.flip(io.run("/tmp/x", ["read 0 4k", "read\0 0 4k"]))
      assert.instanceOf(nul, ImageArgumentError)
      assert.strictEqual(nul.field, "commands.1")
    }))
})

describe("QemuIo.hmpCommand", () => {
  it("quotes the device and the command as HMP reads them", () => {
    assert.deepStrictEqual(
      QemuIo.hmpCommand("drive0", "write -P 0xab 0 64k"),
      Either.right(`qemu-io "drive0" "write -P 0xab 0 64k"`)
    )
    assert.deepStrictEqual(
      QemuIo.hmpCommand("dev0", `say "hi" \\ there\n`, { qdev: true }),
      Either.right(`qemu-io -d "dev0" "say \\"hi\\" \\\\ there\\n"`)
    )
  })

  it("refuses what HMP would cut short or cannot carry", () => {
    const long = QemuIo.hmpCommand("d", `write -P 0x1 0 ${"1".repeat(1100)}`)
    assert.isTrue(Either.isLeft(long) && long.left.field === "command")
    const nul = QemuIo.hmpCommand("d\0", "read 0 1")
    assert.isTrue(Either.isLeft(nul) && nul.left.field === "device")
    assert.isTrue(Either.isLeft(QemuIo.hmpCommand("", "read 0 1")))
  })

  it.scopedLive("the built command runs on a running machine's node through human-monitor-command", () =>
    Effect.gen(function*() {
      const path = yield* image
      const blockdev = yield* CommandLine.blockdev({
        driver: "qcow2",
        "node-name": "disk0",
        file: { driver: "file", filename: path }
      })
      const commands = ["write -P 0xcd 0 4k", "read -P 0xce 0 4k"]
      const log = yield* Effect.scoped(Effect.gen(function*() {
        const vm = yield* Machine.make({ args: [...noneArgs, ...blockdev] })
        for (const command of commands) {
          const line = yield* QemuIo.hmpCommand("disk0", command)
          yield* vm.execute("human-monitor-command", { "command-line": line })
        }
        // QEMU 7.2 prints HMP qemu-io's output on its stdout (the machine's log), not in the reply.
        return yield* logged(vm, "Pattern verification failed")
      }))
      const mismatch = QemuIo.verifyOutput("disk0", commands, log)
      assert.isTrue(Either.isLeft(mismatch) && mismatch.left.offset === 0)
      const io = yield* QemuIo.make()
      yield* io.run(path, "read -P 0xcd 0 4k", { format: "qcow2" })
    }))
})

/** The machine's log once it holds `text` (it flows in the background), within ten seconds. */
const logged = (vm: Machine.MachineService, text: string) =>
  Effect.gen(function*() {
    for (let waited = 0; waited < 10_000; waited += 20) {
      const log = yield* vm.log
      if (log.includes(text)) return log
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.fail(new Error(`the machine's log never showed "${text}"`))
  })
