import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { ShapeCache, shapeKey } from "../src/internal/shapeKey.js"
import * as MachineConfig from "../src/MachineConfig.js"

describe("shapeKey", () => {
  it("tells apart values that JSON would merge: NaN, Infinity, null, -0, '1' and 1, a missing and an undefined field", () => {
    const keys = [NaN, Infinity, -Infinity, null, 0, -0, "1", 1, undefined, {}, { a: undefined }, [], [undefined]]
      .map(shapeKey)
    assert.strictEqual(new Set(keys).size, keys.length)
  })

  it("gives equal keys to equal plain data whatever the object identity, and Durations by value", () => {
    assert.strictEqual(
      shapeKey({ args: ["-M", "none"], launchTimeout: Duration.seconds(2) }),
      shapeKey({ args: ["-M", "none"], launchTimeout: Duration.millis(2000) })
    )
    assert.notStrictEqual(shapeKey({ t: Duration.seconds(2) }), shapeKey({ t: Duration.seconds(3) }))
  })

  it("has no key for what is not plain data: functions, symbols, class instances, getters, holes, cycles", () => {
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    const withGetter = Object.defineProperty({}, "binary", { get: () => "qemu", enumerable: true })
    for (const value of [() => 1, Symbol("s"), new Date(0), { f: () => 1 }, withGetter, [, 1], cyclic, 1n]) {
      assert.isUndefined(shapeKey(value))
    }
  })

  it("ShapeCache computes again for a value with no key, and keeps only what `keep` accepts", () => {
    const cache = new ShapeCache<number>(2)
    let computed = 0
    const compute = () => ++computed
    cache.get({ a: 1 }, compute, () => true)
    cache.get({ a: 1 }, compute, () => true)
    assert.strictEqual(computed, 1)
    cache.get({ f: () => 1 }, compute, () => true)
    cache.get({ f: () => 1 }, compute, () => true)
    assert.strictEqual(computed, 3)
    cache.get({ b: 1 }, compute, () => false)
    cache.get({ b: 1 }, compute, () => false)
    assert.strictEqual(computed, 5)
  })
})

describe("MachineConfig.resolve with decoded shapes cached", () => {
  it.effect("refuses a NaN timeout after the same config with an infinite one was accepted", () =>
    Effect.gen(function*() {
      const ok = yield* Effect.exit(MachineConfig.resolve({ args: ["-S"], launchTimeout: Infinity }))
      assert.isTrue(Exit.isSuccess(ok))
      const bad = yield* Effect.flip(MachineConfig.resolve({ args: ["-S"], launchTimeout: NaN }))
      assert.strictEqual(bad.field, "launchTimeout")
    }))

  it.effect("decodes a caller's object again once it has changed, and gives each machine its own name", () =>
    Effect.gen(function*() {
      const input: { args: Array<string>; binary?: string } = { args: ["-S"] }
      const first = yield* MachineConfig.resolve(input)
      const second = yield* MachineConfig.resolve(input)
      assert.notStrictEqual(first.name, second.name)
      input.binary = ""
      const changed = yield* Effect.flip(MachineConfig.resolve(input))
      assert.strictEqual(changed.field, "binary")
    }))
})
