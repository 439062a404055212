import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Machine from "../../src/Machine.js"
import * as Transcript from "../../src/testing/Transcript.js"
import { noneArgs, tempDir } from "../kit/qemu.js"

describe("Transcript formatting and filters", () => {
  it("prints JSON with Python's separators, keys in the order given, big integers whole", () => {
    assert.strictEqual(
      Transcript.format({ return: { z: 1, a: [true, null, "é"], n: 18446744073709551615n } }),
      `{"return": {"z": 1, "a": [true, null, "\\u00e9"], "n": 18446744073709551615}}`
    )
    assert.strictEqual(Transcript.format({ a: [1], b: {} }, { indent: 2 }), `{\n  "a": [\n    1\n  ],\n  "b": {}\n}`)
    assert.strictEqual(Transcript.format("text stays text"), "text stays text")
  })

  it("filters timestamps in place, generated node names, the test dir and the image format", () => {
    const event = { timestamp: { seconds: 1, microseconds: 2 }, event: "X", data: { node: "#block123" } }
    assert.deepStrictEqual(Transcript.timestamps(event), {
      timestamp: { seconds: "SECS", microseconds: "USECS" },
      event: "X",
      data: { node: "#block123" }
    })
    assert.deepStrictEqual(Transcript.nodeNames(event.data), { node: "NODE_NAME" })
    const text = "Could not open '/tmp/x/t.qcow2': qcow2 format"
    const filtered = [Transcript.testDir("/tmp/x"), Transcript.imageFormat("qcow2")].reduce<unknown>(
      (value, filter) => filter(value),
      { desc: text }
    )
    assert.deepStrictEqual(filtered, { desc: "Could not open 'TEST_DIR/t.IMGFMT': IMGFMT format" })
  })
})

describe("Transcript against real QEMU", () => {
  it.scopedLive("logs commands, raw replies without the client's id and events in QEMU's key order", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const vm = yield* Machine.make({ args: noneArgs })
      const t = yield* Transcript.make(vm, {
        filters: Transcript.standardFilters({ testDir: dir, imageFormat: "qcow2" })
      })
      yield* t.execute("stop")
      yield* t.execute("blockdev-add", {
        "node-name": "n0",
        driver: "qcow2",
        file: { driver: "file", filename: Path.join(dir, "missing.qcow2") }
      }, { echo: false })
      yield* t.log("=== end ===")
      assert.strictEqual(
        yield* t.text,
        [
          `{"execute": "stop"}`,
          `{"return": {}}`,
          `{"timestamp": {"seconds": "SECS", "microseconds": "USECS"}, "event": "STOP"}`,
          `{"error": {"class": "GenericError", "desc": "Could not open 'TEST_DIR/missing.IMGFMT': No such file or directory"}}`,
          `=== end ===`,
          ``
        ].join("\n")
      )
    }))

  it.scopedLive("waitEvent logs events up to the one awaited; log after an event goes right after it", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      const t = yield* Transcript.make(vm, { events: (event) => event.event !== "RESUME" })
      yield* vm.execute("stop")
      yield* vm.execute("cont")
      yield* vm.execute("stop")
      const stop = yield* t.waitEvent("STOP")
      yield* t.log("after the first STOP", { after: stop })
      const lines = (yield* t.text).trimEnd().split("\n")
      assert.deepStrictEqual(lines.map((line) => line.match(/"event": "(\w+)"/)?.[1] ?? line), [
        "STOP",
        "after the first STOP",
        "STOP"
      ])
    }))

  it.scopedLive("compares with a reference: passes when equal, a line diff when not, written with update", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const reference = Path.join(dir, "ref", "t.out")
      const vm = yield* Machine.make({ args: noneArgs })
      const t = yield* Transcript.make(vm)
      yield* t.execute("query-status")
      const missing = yield* Effect.flip(t.compare(reference))
      assert.strictEqual(missing.reason, "MissingReference")
      assert.include(missing.message, Transcript.updateVariable)
      yield* t.compare(reference, { update: true })
      yield* t.compare(reference)
      yield* t.log("one more line")
      const differs = yield* Effect.flip(t.compare(reference))
      assert.strictEqual(differs.reason, "Differs")
      assert.include(differs.diff, `+ one more line`)
      assert.include(differs.message, `  {"execute": "query-status"}`)
      Fs.writeFileSync(reference, Fs.readFileSync(reference, "utf8").replace("running", "paused"))
      const changed = yield* Effect.flip(t.compare(reference))
      assert.match(changed.diff, /^- .*"paused".*$/m)
      assert.match(changed.diff, /^\+ .*"running".*$/m)
    }))

  it.scopedLive("logs only the events the events option keeps, spread over lines with indent", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      const t = yield* Transcript.make(vm, { events: (event) => event.event === "RESUME", indent: 2, echo: false })
      yield* t.execute("stop")
      yield* t.execute("cont")
      assert.strictEqual(
        yield* t.text,
        [
          `{`,
          `  "return": {}`,
          `}`,
          `{`,
          `  "return": {}`,
          `}`,
          `{`,
          `  "timestamp": {`,
          `    "seconds": "SECS",`,
          `    "microseconds": "USECS"`,
          `  },`,
          `  "event": "RESUME"`,
          `}`,
          ``
        ].join("\n")
      )
    }))

  it.scopedLive("waitEvent with a timeout that is no duration fails with QmpArgumentError", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      const t = yield* Transcript.make(vm)
      const error = yield* Effect.flip(t.waitEvent("STOP", { timeout: 0 }))
      assert.strictEqual(error._tag, "QmpArgumentError")
      const late = yield* Effect.flip(t.waitEvent("STOP", { timeout: "50 millis" }))
      assert.strictEqual(late._tag, "QmpTimeout")
    }))
})
