import { assert, describe, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as ExactJson from "../src/internal/exactJson.js"

const roundTrip = (value: unknown) => {
  const text = ExactJson.stringify(value)
  if (text instanceof ExactJson.NotSerializable) throw new Error(text.detail)
  return ExactJson.parse(text)
}

describe("ExactJson", () => {
  it.prop(
    "a bigint of any 64-bit value survives a round trip exactly (a number when it is safe)",
    [FastCheck.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n })],
    ([big]) => {
      const expected = Number.isSafeInteger(Number(big)) ? Number(big) : big
      assert.deepStrictEqual(roundTrip({ v: big, list: [big] }), { v: expected, list: [expected] })
    }
  )

  it.prop(
    "an integral number beyond 2^53 is written with the digits of its exact value",
    [FastCheck.double({ min: 2 ** 53, max: 2 ** 70, noNaN: true })],
    ([n]) => {
      const text = ExactJson.stringify({ n }) as string
      assert.strictEqual(text, `{"n":${BigInt(n)}}`)
    }
  )

  it.prop("plain JSON values are written as JSON.stringify writes them", [FastCheck.jsonValue()], ([value]) => {
    const safe = JSON.parse(
      JSON.stringify(value),
      (_k, v) => (typeof v === "number" && !Number.isSafeInteger(v) && Number.isInteger(v) ? 0 : v)
    )
    assert.strictEqual(ExactJson.stringify(safe), JSON.stringify(safe))
  })

  it("refuses what JSON would silently change, naming where it is", () => {
    const refused = (value: unknown) => ExactJson.stringify(value) as ExactJson.NotSerializable
    assert.strictEqual(refused({ a: [1, { b: NaN }] }).path, "a[1].b")
    assert.strictEqual(refused({ a: Infinity }).detail, "Infinity has no JSON form")
    assert.strictEqual(refused([1, undefined]).path, "[1]")
    assert.include(refused({ s: Symbol("x") }).detail, "symbol")
    let deep: unknown = 1
    for (let i = 0; i < 1024; i++) deep = [deep]
    assert.include(refused({ deep }).detail, "nested deeper than QMP's limit of 1024")
    assert.isString(ExactJson.stringify({ deep: (deep as Array<unknown>)[0] }))
  })
})
