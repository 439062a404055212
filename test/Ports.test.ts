import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import * as Machine from "../src/Machine.js"
import * as MachineConfig from "../src/MachineConfig.js"
import type { LaunchError, MachineConfigError } from "../src/MachineError.js"
import { failsLeavingNothing } from "./kit/leftovers.js"
import { loggedIn } from "./kit/linuxMachine.js"
import { noneArgs, tempDir } from "./kit/qemu.js"

/** Connects to 127.0.0.1:port, sends `text` and half-closes, and returns all the server sent. */
const exchange = (port: number, text: string) =>
  Effect.async<string, Error>((resume) => {
    const chunks: Array<Buffer> = []
    const socket = Net.connect({ host: "127.0.0.1", port }, () => socket.end(text))
    socket.on("data", (chunk) => chunks.push(chunk))
    socket.on("error", (error) => resume(Effect.fail(error)))
    socket.on("close", () => resume(Effect.succeed(Buffer.concat(chunks).toString("utf8"))))
    return Effect.sync(() => socket.destroy())
  })

describe("Forwarded ports", () => {
  it.scopedLive("a guest nc -l answers on the host port the machine reports, both ways", () =>
    Effect.gen(function*() {
      const { shell, vm } = yield* loggedIn({ ports: [8080, 22] })
      const http = vm.ports.get(8080)!
      const ssh = vm.ports.get(22)!
      assert.deepStrictEqual([...vm.ports.keys()], [8080, 22])
      assert.isAbove(http, 0)
      assert.isAbove(ssh, 0)
      assert.notStrictEqual(http, ssh)
      // the guest prints its greeting, keeps what the host sends, and closes when the host has
      yield* shell.run("(echo hello-from-guest | nc -l -p 8080 > /root/got) > /dev/null 2>&1 &")
      let answer = ""
      // nc may not be listening yet: the guest then resets the connection
      for (let attempt = 0; attempt < 50 && answer === ""; attempt++) {
        answer = yield* exchange(http, "from-host\n").pipe(Effect.orElseSucceed(() => ""))
        if (answer === "") yield* Effect.sleep("200 millis")
      }
      assert.strictEqual(answer, "hello-from-guest\n")
      yield* shell.run("wait")
      assert.deepStrictEqual(yield* shell.run("cat /root/got"), { exitCode: 0, stdout: "from-host\n" })
    }))

  it.scopedLive("a machine without ports has no NIC of the library's and an empty ports map", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      assert.strictEqual(vm.ports.size, 0)
      assert.notInclude(vm.process.commandLine.join(" "), "hostfwd")
    }))
})

describe("Forwarded ports: bad input", () => {
  const refused = (input: Machine.MachineConfigInput) => Effect.flip(MachineConfig.resolve(input))

  it.effect("a port out of range or not an integer is refused, naming the entry", () =>
    Effect.gen(function*() {
      for (const [ports, field] of [[[0], "ports.0"], [[22, 65536], "ports.1"], [[1.5], "ports.0"]] as const) {
        const error = yield* refused({ ports })
        assert.strictEqual(error._tag, "MachineConfigError")
        assert.strictEqual(error.field, field)
      }
      const text = yield* refused({ ports: ["22" as unknown as number] })
      assert.strictEqual(text.field, "ports.0")
    }))

  it.effect("a port listed twice, a NIC model without ports, or ports without QMP is refused, saying what to fix", () =>
    Effect.gen(function*() {
      const twice = yield* refused({ ports: [22, 80, 22] })
      assert.strictEqual(twice.field, "ports.2")
      assert.include(twice.message, "port 22 is listed twice")
      const nic = yield* refused({ nicModel: "e1000" })
      assert.strictEqual(nic.field, "nicModel")
      assert.include(nic.message, "add ports")
      const noQmp = yield* refused({ ports: [22], qmp: false })
      assert.strictEqual(noQmp.field, "ports")
      assert.include(noQmp.message, "qmp is false")
    }))

  it.scopedLive("bad ports given to Machine.make fail before anything is spawned and leave nothing behind", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const error = yield* failsLeavingNothing(dir, Machine.make({ args: noneArgs, baseTempDir: dir, ports: [22, 22] }))
      assert.strictEqual((error as MachineConfigError).field, "ports.1")
    }))

  it.scopedLive("a machine where user networking cannot be set up fails with LaunchError Network and leaves nothing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      // -M none has no PCI bus for the NIC
      const noBus = yield* failsLeavingNothing(dir, Machine.make({ args: noneArgs, baseTempDir: dir, ports: [22] }))
      assert.strictEqual(noBus._tag, "LaunchError")
      assert.strictEqual((noBus as LaunchError).reason, "Network")
      assert.include(noBus.message, "No 'PCI' bus found for device 'virtio-net-pci'")
      const badModel = yield* failsLeavingNothing(
        dir,
        Machine.make({ args: ["-M", "pc", "-nodefaults"], baseTempDir: dir, ports: [22], nicModel: "no-such-nic" })
      )
      assert.strictEqual((badModel as LaunchError).reason, "Network")
      assert.include(badModel.message, "'no-such-nic' is not a valid device model name")
    }))
})
