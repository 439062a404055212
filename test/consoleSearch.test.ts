import { assert, describe, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import * as ConsoleSearch from "../src/internal/consoleSearch.js"
import { RecentBytes } from "../src/internal/recentBytes.js"

const encoder = new TextEncoder()
const byteLength = (text: string) => encoder.encode(text).length

const text = FastCheck.array(FastCheck.constantFrom("a", "b", "1", "\r\n", "\n", "é", "😀", " "), { maxLength: 60 })
  .map((parts) => parts.join(""))

const patterns: ReadonlyArray<string | RegExp> = ["ab", "1", /^a+/m, /^\d+\r?$/m, /(?<=b)1/, /\bb/, /é😀?/u]

describe("ConsoleSearch", () => {
  it.prop(
    "finds the first match at or after the cursor in the whole text, as the pattern reads the whole text",
    [text, FastCheck.nat(), FastCheck.constantFrom(...patterns), FastCheck.array(FastCheck.nat(), { maxLength: 5 })],
    ([whole, cursorSeed, pattern, cuts]) => {
      const chars = [...whole]
      const cursorChars = chars.slice(0, cursorSeed % (chars.length + 1)).join("")
      const cursor = cursorChars.length
      const bytes = encoder.encode(whole)
      const buffer = new RecentBytes(1024)
      // chunked arbitrarily, as reads arrive
      const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b)
      let start = 0
      for (const point of [...points, bytes.length]) {
        buffer.append(bytes.subarray(start, point))
        start = point
      }
      const found = ConsoleSearch.search(buffer, byteLength(cursorChars), [ConsoleSearch.compile(pattern)])
      let index = -1
      let length = 0
      if (typeof pattern === "string") {
        index = whole.indexOf(pattern, cursor)
        length = pattern.length
      } else {
        const regex = new RegExp(pattern.source, pattern.flags + "g")
        regex.lastIndex = cursor
        const match = regex.exec(whole)
        if (match !== null) {
          index = match.index
          length = match[0].length
        }
      }
      if (index === -1) return assert.isUndefined(found)
      assert.isDefined(found)
      assert.strictEqual(found!.start, byteLength(whole.slice(0, index)))
      assert.strictEqual(found!.end, byteLength(whole.slice(0, index + length)))
    }
  )

  it.prop(
    "never returns a match that begins before the cursor or in output already dropped",
    [text, FastCheck.integer({ min: 4, max: 40 }), FastCheck.nat()],
    ([whole, capacity, cursorSeed]) => {
      const bytes = encoder.encode(whole)
      const buffer = new RecentBytes(capacity)
      buffer.append(bytes)
      const from = cursorSeed % (bytes.length + 1)
      const found = ConsoleSearch.search(buffer, from, [ConsoleSearch.compile(/[\s\S]/u)])
      if (found === undefined) return
      assert.isAtLeast(found.start, Math.max(from, buffer.start))
      assert.isAtMost(found.end, buffer.end)
    }
  )

  it("a character whose last bytes have not arrived is not searched yet", () => {
    const buffer = new RecentBytes(64)
    const smile = encoder.encode("😀")
    buffer.append(encoder.encode("x"))
    buffer.append(smile.subarray(0, 2))
    assert.isUndefined(ConsoleSearch.search(buffer, 0, [ConsoleSearch.compile(/x./su)]))
    buffer.append(smile.subarray(2))
    assert.strictEqual(ConsoleSearch.search(buffer, 0, [ConsoleSearch.compile(/x./su)])?.end, 5)
  })
})
