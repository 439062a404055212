import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Path from "node:path"
import { CommandLine, QemuImg } from "../src/index.js"
import * as Machine from "../src/Machine.js"
import { noneArgs, tempDir } from "./kit/qemu.js"

const right = <A>(either: Either.Either<A, CommandLine.CommandLineError>): A => {
  if (Either.isLeft(either)) throw new Error(`expected Right, got ${either.left.message}`)
  return either.right
}

const refused = (either: Either.Either<unknown, CommandLine.CommandLineError>, path: string, detail: RegExp) => {
  assert.isTrue(Either.isLeft(either), "expected the value to be refused")
  if (Either.isLeft(either)) {
    assert.strictEqual(either.left.path, path)
    assert.match(either.left.detail, detail)
  }
}

describe("CommandLine builders", () => {
  it("flatten nested objects and arrays into dotted keys, booleans as on/off, commas doubled", () => {
    assert.deepStrictEqual(
      right(CommandLine.blockdev({
        driver: "quorum",
        "node-name": "q0",
        "vote-threshold": 2,
        children: [{ driver: "file", filename: "/a,b" }, "node1"],
        "read-only": true,
        cache: { direct: false }
      } as CommandLine.BlockdevOptions)),
      [
        "-blockdev",
        "driver=quorum,node-name=q0,vote-threshold=2,children.0.driver=file,children.0.filename=/a,,b,children.1=node1,read-only=on,cache.direct=off"
      ]
    )
  })

  it("write integers beyond 2^53 exactly and leave undefined members out", () => {
    assert.strictEqual(
      right(CommandLine.optionString({ size: 2n ** 63n - 1n, big: 2 ** 60, half: 0.5, gone: undefined })),
      "size=9223372036854775807,big=1152921504606846976,half=0.5"
    )
  })

  it("put the type of -device, -netdev and -object first, bare", () => {
    assert.deepStrictEqual(right(CommandLine.device({ driver: "virtio-blk-pci", drive: "d0", serial: "a,b" })), [
      "-device",
      "virtio-blk-pci,drive=d0,serial=a,,b"
    ])
    assert.deepStrictEqual(
      right(CommandLine.netdev({ id: "n0", type: "user", hostfwd: ["tcp::1-:22", "tcp::2-:23"] })),
      ["-netdev", "user,id=n0,hostfwd=tcp::1-:22,hostfwd=tcp::2-:23"]
    )
    assert.deepStrictEqual(
      right(CommandLine.netdev({ type: "stream", id: "s0", addr: { type: "unix", path: "/tmp/s" } })),
      ["-netdev", "stream,id=s0,addr.type=unix,addr.path=/tmp/s"]
    )
    assert.deepStrictEqual(right(CommandLine.object({ "qom-type": "memory-backend-ram", id: "m0", size: 1048576 })), [
      "-object",
      "memory-backend-ram,id=m0,size=1048576"
    ])
    assert.deepStrictEqual(right(CommandLine.drive({ if: "none", id: "d0", file: "/x", "file.locking": false })), [
      "-drive",
      "if=none,id=d0,file=/x,file.locking=off"
    ])
  })

  it("refuse what the option syntax cannot express, naming the member", () => {
    refused(CommandLine.optionString({ backing: null as never }), "backing", /null/)
    refused(CommandLine.optionString({ a: { children: [] } }), "a.children", /empty list/)
    refused(CommandLine.optionString({ a: {} }), "a", /empty object/)
    refused(CommandLine.optionString({ "a,b": 1 }), "a,b", /','/)
    refused(CommandLine.optionString({ "a=b": 1 }), "a=b", /'='/)
    refused(CommandLine.optionString({ "": 1 }), "", /empty key/)
    refused(CommandLine.optionString({ "a..b": 1 }), "a..b", /empty dotted part/)
    refused(CommandLine.optionString({ name: "a\0b" }), "name", /NUL/)
    refused(CommandLine.optionString({ n: NaN }), "n", /finite/)
    refused(CommandLine.optionString({ n: Infinity }), "n", /finite/)
    refused(CommandLine.optionString({ file: { filename: "/a" }, "file.filename": "/b" }), "file.filename", /twice/)
    const cycle: Record<string, unknown> = { a: 1 }
    cycle.self = cycle
    refused(CommandLine.optionString(cycle as CommandLine.OptionsObject), "self", /contains itself/)
    refused(CommandLine.device({ drive: "d0" } as never), "driver", /string/)
    refused(CommandLine.blockdev({ "node-name": "x" } as never), "driver", /string/)
  })

  it("write -incoming for each source, and refuse what its parser would misread", () => {
    assert.deepStrictEqual(right(CommandLine.incoming("defer")), ["-incoming", "defer"])
    assert.deepStrictEqual(right(CommandLine.incoming({ unix: "/tmp/m.sock" })), ["-incoming", "unix:/tmp/m.sock"])
    assert.deepStrictEqual(right(CommandLine.incoming({ tcp: { host: "::1", port: 4444 } })), [
      "-incoming",
      "tcp:[::1]:4444"
    ])
    assert.deepStrictEqual(right(CommandLine.incoming({ fd: 7 })), ["-incoming", "fd:7"])
    assert.deepStrictEqual(right(CommandLine.incoming({ exec: "cat /tmp/state" })), [
      "-incoming",
      "exec:cat /tmp/state"
    ])
    refused(CommandLine.incoming({ tcp: { host: "a,b", port: 1 } }), "tcp.host", /not a host/)
    refused(CommandLine.incoming({ tcp: { host: "h", port: 70000 } }), "tcp.port", /port/)
    refused(CommandLine.incoming({ fd: -1 }), "fd", /descriptor/)
  })
})

const scratch = tempDir("effect-qemu-cmdline-test-")

describe("CommandLine with real QEMU", () => {
  it.scopedLive("a -blockdev built from a nested object is opened as written, comma in the file name included", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.make()
      const path = Path.join(yield* scratch, "a,b.qcow2")
      yield* img.create(path, { format: "qcow2", size: "1M" })
      const blockdev = yield* CommandLine.blockdev({
        driver: "qcow2",
        "node-name": "disk0",
        "read-only": true,
        cache: { direct: false, "no-flush": true },
        file: { driver: "file", filename: path, "node-name": "proto0" }
      })
      const vm = yield* Machine.make({ args: [...noneArgs, ...blockdev] })
      const nodes = yield* vm.execute("query-named-block-nodes", { flat: true })
      const disk = nodes.find((node) => node["node-name"] === "disk0")
      const proto = nodes.find((node) => node["node-name"] === "proto0")
      assert.strictEqual(disk?.drv, "qcow2")
      assert.strictEqual(disk?.file, path)
      assert.strictEqual(disk?.ro, true)
      assert.strictEqual(disk?.cache["no-flush"], true)
      assert.strictEqual(proto?.drv, "file")
    }))

  it.scopedLive("-drive, -device, -netdev, -object and -incoming as built are what QEMU reports", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.make()
      const path = Path.join(yield* scratch, "d.qcow2")
      yield* img.create(path, { format: "qcow2", size: "1M" })
      const args = [
        ...(yield* CommandLine.drive({ if: "none", id: "d0", file: path, format: "qcow2", "file.locking": false })),
        ...(yield* CommandLine.device({ driver: "virtio-blk-pci", id: "v0", drive: "d0", serial: "se,ri,al" })),
        ...(yield* CommandLine.netdev({
          type: "user",
          id: "n0",
          hostfwd: ["tcp:127.0.0.1:0-:22", "tcp:127.0.0.1:0-:23"]
        })),
        ...(yield* CommandLine.object({ "qom-type": "memory-backend-ram", id: "m0", size: 2 * 1048576 })),
        ...(yield* CommandLine.incoming("defer"))
      ]
      const vm = yield* Machine.make({ machineType: "pc", args: ["-nodefaults", "-S", ...args] })
      const serial = yield* vm.execute("qom-get", { path: "/machine/peripheral/v0", property: "serial" })
      assert.strictEqual(serial, "se,ri,al")
      const blocks = yield* vm.execute("query-block")
      assert.strictEqual(blocks.find((block) => block.device === "d0")?.inserted?.file, path)
      const size = yield* vm.execute("qom-get", { path: "/objects/m0", property: "size" })
      assert.strictEqual(size, 2 * 1048576)
      const usernet = yield* vm.execute("human-monitor-command", { "command-line": "info usernet" })
      assert.strictEqual(usernet.split("HOST_FORWARD").length - 1, 2)
      assert.strictEqual((yield* vm.execute("query-status")).status, "inmigrate")
    }))
})
