import { assert, describe, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import { RecentBytes } from "../src/internal/recentBytes.js"

describe("RecentBytes", () => {
  it.prop(
    "keeps exactly the last `capacity` bytes, whatever the chunking, and reads any offset back",
    [
      FastCheck.integer({ min: 1, max: 64 }),
      FastCheck.array(FastCheck.uint8Array({ maxLength: 100 }), { maxLength: 30 }),
      FastCheck.nat()
    ],
    ([capacity, chunks, probe]) => {
      const recent = new RecentBytes(capacity)
      const all: Array<number> = []
      for (const chunk of chunks) {
        recent.append(chunk)
        all.push(...chunk)
        assert.strictEqual(recent.end, all.length)
        assert.strictEqual(recent.start, Math.max(0, all.length - capacity))
      }
      assert.deepStrictEqual([...recent.from(0)], all.slice(-capacity))
      const offset = probe % (all.length + 1)
      assert.deepStrictEqual([...recent.from(offset)], all.slice(Math.max(offset, all.length - capacity)))
    }
  )

  it.prop(
    "appendAll keeps what appending one by one keeps",
    [
      FastCheck.integer({ min: 1, max: 64 }),
      FastCheck.array(FastCheck.uint8Array({ maxLength: 100 }), { maxLength: 30 })
    ],
    ([capacity, chunks]) => {
      const one = new RecentBytes(capacity)
      for (const chunk of chunks) one.append(chunk)
      const all = new RecentBytes(capacity)
      all.appendAll(chunks)
      assert.deepStrictEqual([...all.from(0)], [...one.from(0)])
      assert.strictEqual(all.end, one.end)
    }
  )

  it("text starts on a character boundary when the window cuts a character", () => {
    const recent = new RecentBytes(4)
    recent.append(new TextEncoder().encode("aé€")) // 1 + 2 + 3 bytes: the window keeps the last 4
    const { offset, text } = recent.text(0)
    assert.strictEqual(text, "€")
    assert.strictEqual(offset, 3)
  })
})
