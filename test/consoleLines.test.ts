import { assert, describe, it } from "@effect/vitest"
import * as FastCheck from "effect/FastCheck"
import { LineSplitter } from "../src/internal/consoleLines.js"
import { splitAt } from "./kit/chunks.js"

const encoder = new TextEncoder()

const pieces = (line: string, maxLength: number): Array<string> => {
  if (line.length === 0) return [""]
  const out: Array<string> = []
  for (let at = 0; at < line.length; at += maxLength) out.push(line.slice(at, at + maxLength))
  return out
}

/**
 * The model: decode everything at once, split on "\n", drop the "\r"s that end each line, cut each
 * line into `maxLength`-sized pieces; the unfinished last line counts only if something is left.
 */
const model = (bytes: Uint8Array, maxLength: number): Array<string> => {
  const lines = new TextDecoder().decode(bytes).split("\n")
  const last = lines.pop()!.replace(/\r+$/, "")
  const out = lines.flatMap((line) => pieces(line.replace(/\r+$/, ""), maxLength))
  return last.length > 0 ? [...out, ...pieces(last, maxLength)] : out
}

/** Console-like text: letters, CR, LF, a two-byte and a four-byte character, and stray bytes. */
const consoleBytes = FastCheck.array(
  FastCheck.oneof(
    FastCheck.constantFrom("a", "b", "\r", "\n", "\r\n", "é", "😀", " ").map((text) => [...encoder.encode(text)]),
    FastCheck.integer({ min: 0x80, max: 0xff }).map((byte) => [byte])
  ),
  { maxLength: 80 }
).map((parts) => Uint8Array.from(parts.flat()))

describe("LineSplitter", () => {
  it.prop(
    "emits what splitting the whole text at once would, whatever the chunking and the line limit",
    [consoleBytes, FastCheck.array(FastCheck.nat(), { maxLength: 10 }), FastCheck.integer({ min: 1, max: 8 })],
    ([bytes, cuts, maxLength]) => {
      const splitter = new LineSplitter(maxLength)
      const lines: Array<string> = []
      for (const chunk of splitAt(bytes, cuts)) lines.push(...splitter.push(chunk))
      lines.push(...splitter.end())
      assert.deepStrictEqual(lines, model(bytes, maxLength))
    }
  )

  it.prop(
    "holds at most maxLength characters of an unfinished line: its pieces come out as it arrives",
    [FastCheck.integer({ min: 1, max: 8 }), FastCheck.integer({ min: 0, max: 100 })],
    ([maxLength, length]) => {
      const splitter = new LineSplitter(maxLength)
      const emitted = splitter.push(encoder.encode("x".repeat(length)))
      const held = length === 0 ? 0 : ((length - 1) % maxLength) + 1
      assert.strictEqual(emitted.join("").length, length - held)
      assert.isTrue(emitted.every((piece) => piece.length === maxLength))
    }
  )

  it("a restart forgets the unfinished line and starts from the given bytes", () => {
    const splitter = new LineSplitter(100)
    splitter.push(encoder.encode("old half"))
    splitter.restart(encoder.encode("new "))
    assert.deepStrictEqual(splitter.push(encoder.encode("line\r\nnext")), ["new line"])
    assert.deepStrictEqual(splitter.end(), ["next"])
  })
})
