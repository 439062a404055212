import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Machine from "../../src/Machine.js"
import * as Assert from "../../src/testing/Assert.js"
import { noneArgs } from "../kit/qemu.js"

describe("Assert", () => {
  it.scopedLive("passes on a real reply's value at a path and fails with both values on a mismatch", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      yield* vm.execute("blockdev-add", { driver: "null-co", "node-name": "n0", size: 4096 })
      const reply = yield* vm.raw("query-named-block-nodes")
      yield* Assert.qmp(reply, "return[0]/node-name", "n0")
      yield* Assert.qmp(reply, "return[0]/image/virtual-size", 4096n)
      const error = yield* Effect.flip(Assert.qmp(reply, "return[0]/drv", "qcow2"))
      assert.strictEqual(error.reason, "Mismatch")
      assert.strictEqual(error.message, `at return[0]/drv: expected "qcow2", found "null-co"`)
      const failure = yield* Effect.flip(Assert.qmp(yield* vm.raw("no-such-command"), "return", {}))
      assert.strictEqual(failure.reason, "MissingPath")
      assert.strictEqual(failure.message, `at return: the top has no "return" (it has: error)`)
    }))

  it("says where a walk stopped: a missing key, an index out of range, a value that is not a list", () => {
    const reply = { return: [{ status: "running", io: { ok: true } }] }
    assert.deepStrictEqual(Assert.dictpath(reply, "return[0]/status"), Either.right("running"))
    assert.deepStrictEqual(Assert.dictpath(reply, "return[1]/status"), Either.left("return has 1 items, no [1]"))
    assert.deepStrictEqual(
      Assert.dictpath(reply, "return[0]/io[0]"),
      Either.left("return[0]/io is not a list, cannot take [0]")
    )
    assert.deepStrictEqual(
      Assert.dictpath(reply, "return[0]/speed"),
      Either.left(`return[0] has no "speed" (it has: status, io)`)
    )
  })

  it("compares as decoded JSON: keys in any order, bigints equal to the same number", () => {
    assert.isTrue(Assert.equals({ a: 1, b: [2n, { c: null }] }, { b: [2, { c: null }], a: 1n }))
    assert.isFalse(Assert.equals({ a: 1 }, { a: 1, b: 2 }))
    assert.isFalse(Assert.equals(1.5, 1n))
    assert.isFalse(Assert.equals([1], { 0: 1 }))
  })

  it("throws from plain tests, with a line diff for objects", () => {
    const reply = { return: { status: "paused", running: false } }
    Assert.assertQmp(reply, "return/running", false)
    Assert.assertQmpAbsent(reply, "return/error")
    const thrown = (() => {
      try {
        Assert.assertQmp(reply, "return", { status: "running", running: false })
      } catch (error) {
        return error
      }
      return undefined
    })()
    assert.instanceOf(thrown, Assert.QmpAssertionError)
    assert.instanceOf(thrown, Error)
    assert.include((thrown as Error).message, `-   "status": "running"\n+   "status": "paused"`)
    assert.throws(
      () => Assert.assertQmpAbsent(reply, "return/status"),
      `at return/status: expected nothing, found "paused"`
    )
  })

  it.effect("qmpAbsent and path as Effects: nothing at a path passes, a value there fails; path returns it", () =>
    Effect.gen(function*() {
      const reply = { return: [{ device: "drive0", offset: 0 }] }
      yield* Assert.qmpAbsent(reply, "return[0]/error")
      yield* Assert.qmpAbsent(reply, "return[1]")
      const present = yield* Effect.flip(Assert.qmpAbsent(reply, "return[0]/offset"))
      assert.strictEqual(present.reason, "Present")
      assert.strictEqual(present.message, "at return[0]/offset: expected nothing, found 0")
      assert.strictEqual(yield* Assert.path(reply, "return[0]/device"), "drive0")
      const missing = yield* Effect.flip(Assert.path(reply, "return[0]/len"))
      assert.strictEqual(missing.reason, "MissingPath")
      assert.include(missing.message, `return[0] has no "len" (it has: device, offset)`)
    }))
})
