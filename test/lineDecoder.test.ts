import { assert, describe, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import { LineDecoder } from "../src/internal/lineDecoder.js"
import { splitAt } from "./kit/chunks.js"

const encoder = new TextEncoder()

const jsonValue = FastCheck.jsonValue({ maxDepth: 3 })

/**
 * The model of exact decoding: what plain `JSON.parse` gives, except that an integer literal
 * outside the safe range comes back as the `bigint` of exactly the digits sent.
 */
const exactModel = (text: string): unknown =>
  JSON.parse(
    text,
    (_key, value) =>
      typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value) &&
        /^-?\d+$/.test(String(value))
        ? BigInt(String(value))
        : value
  )

describe("LineDecoder", () => {
  it.prop(
    "keeps integers beyond 2^53 exact as bigint, in any position, and leaves digits in strings alone",
    [FastCheck.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }), FastCheck.jsonValue({ maxDepth: 2 })],
    ([big, other]) => {
      const text = `{"a": ${big}, "b": [${big}, ${JSON.stringify(other)}], "s": "${big}"}\r\n`
      const result = new LineDecoder(1 << 20).push(encoder.encode(text))
      const expected = Number.isSafeInteger(Number(big)) ? Number(big) : big
      assert.deepStrictEqual(result.messages, [{
        a: expected,
        b: [expected, exactModel(JSON.stringify(other))],
        s: `${big}`
      }])
    }
  )

  it.prop(
    "decodes every valid message exactly once, however the stream is split",
    [FastCheck.array(jsonValue, { maxLength: 20 }), FastCheck.array(FastCheck.nat(), { maxLength: 30 })],
    ([values, cuts]) => {
      const text = values.map((value) => JSON.stringify(value) + "\r\n").join("")
      const decoder = new LineDecoder(1 << 20)
      const out: Array<unknown> = []
      for (const chunk of splitAt(encoder.encode(text), cuts)) {
        const result = decoder.push(chunk)
        assert.strictEqual(result._tag, "Messages")
        out.push(...result.messages)
      }
      assert.deepStrictEqual(out, exactModel(JSON.stringify(values)))
      assert.strictEqual(decoder.buffered, 0)
    }
  )

  it.prop(
    "never throws on arbitrary bytes and never holds more than its bound",
    [FastCheck.array(FastCheck.uint8Array({ maxLength: 300 }), { maxLength: 20 })],
    ([chunks]) => {
      const decoder = new LineDecoder(256)
      for (const chunk of chunks) {
        const result = decoder.push(chunk)
        assert.isAtMost(decoder.buffered, 256)
        if (result._tag !== "Messages") return
      }
    }
  )

  it.prop(
    "multi-byte characters split across chunks survive",
    [FastCheck.string({ unit: "grapheme", maxLength: 50 }), FastCheck.array(FastCheck.nat(), { maxLength: 10 })],
    ([text, cuts]) => {
      const decoder = new LineDecoder(1 << 20)
      const out: Array<unknown> = []
      for (const chunk of splitAt(encoder.encode(JSON.stringify({ text }) + "\n"), cuts)) {
        out.push(...decoder.push(chunk).messages)
      }
      assert.deepStrictEqual(out, [{ text }])
    }
  )

  it("reports a line over the bound without buffering it", () => {
    const decoder = new LineDecoder(1024)
    const result = decoder.push(encoder.encode("x".repeat(2000)))
    assert.strictEqual(result._tag, "TooLong")
    assert.strictEqual(decoder.buffered, 0)
  })

  it("reports invalid JSON with an excerpt, after the valid messages before it", () => {
    const decoder = new LineDecoder(1024)
    const result = decoder.push(encoder.encode("{\"a\":1}\n{oops\n"))
    assert.strictEqual(result._tag, "InvalidJson")
    assert.deepStrictEqual(result.messages, [{ a: 1 }])
    if (result._tag === "InvalidJson") assert.strictEqual(result.line, "{oops")
  })
})
