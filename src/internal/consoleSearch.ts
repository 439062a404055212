/**
 * Searching the recent console output from a cursor.
 *
 * The whole buffered text is searched, starting at the cursor: a match may not begin before the
 * cursor, but what precedes the cursor is still there for the pattern to see, so `^` (with `m`),
 * `\b` and lookbehinds mean what they mean in the text. A cursor left mid-line by an earlier match
 * does not make `^` match there.
 *
 * @internal
 */
import type { RecentBytes } from "./recentBytes.js"

const utf8 = new TextDecoder("utf-8")

/** A pattern ready to search with: a string, or a regex with the `g` flag (so `lastIndex` sets where to start). */
export type Compiled = string | RegExp

/**
 * Compiles a caller's pattern. The caller's regex is copied: its own `g` or `y` flag would carry
 * `lastIndex` from one search to the next.
 */
export const compile = (pattern: string | RegExp): Compiled =>
  typeof pattern === "string" ? pattern : new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, "") + "g")

/** The earliest match of one of the patterns. */
export interface Found {
  /** Which of the patterns matched (the earliest match wins; on a tie, the first pattern). */
  readonly which: number
  readonly match: string | RegExpExecArray
  /** Absolute byte offsets of the match's start and end. */
  readonly start: number
  readonly end: number
}

/** How many bytes at the end of `bytes` belong to a character that has not arrived whole yet. */
const incompleteTail = (bytes: Uint8Array): number => {
  for (let back = 1; back <= Math.min(3, bytes.length); back++) {
    const byte = bytes[bytes.length - back]
    if ((byte & 0xc0) === 0x80) continue
    const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1
    return length > back ? back : 0
  }
  return 0
}

const isContinuation = (byte: number | undefined) => byte !== undefined && (byte & 0xc0) === 0x80

/**
 * The buffered text, split at the cursor: `text` from the oldest whole character kept, `cursor` the
 * index in `text` where the search starts, `cursorOffset` its absolute byte offset. A cursor inside
 * a character moves past it; a character whose last bytes have not arrived is left out.
 */
export const textAt = (
  buffer: RecentBytes,
  from: number
): { readonly text: string; readonly cursor: number; readonly cursorOffset: number } => {
  const base = buffer.start
  const bytes = buffer.from(base)
  const end = bytes.length - incompleteTail(bytes)
  let skip = 0
  while (skip < 3 && skip < end && isContinuation(bytes[skip])) skip++
  let split = Math.min(end, Math.max(skip, from - base))
  while (split < end && isContinuation(bytes[split])) split++
  const before = utf8.decode(bytes.subarray(skip, split))
  const after = utf8.decode(bytes.subarray(split, end))
  return { text: before + after, cursor: before.length, cursorOffset: base + split }
}

/** Finds the earliest match at or after absolute byte offset `from` of any of `patterns`. */
export const search = (buffer: RecentBytes, from: number, patterns: ReadonlyArray<Compiled>): Found | undefined => {
  const { cursor, cursorOffset, text } = textAt(buffer, from)
  let best: { which: number; match: string | RegExpExecArray; index: number; length: number } | undefined
  for (let which = 0; which < patterns.length; which++) {
    const pattern = patterns[which]
    let index: number
    let length: number
    let match: string | RegExpExecArray
    if (typeof pattern === "string") {
      index = text.indexOf(pattern, cursor)
      if (index === -1) continue
      length = pattern.length
      match = pattern
    } else {
      pattern.lastIndex = cursor
      const found = pattern.exec(text)
      if (found === null) continue
      index = found.index
      length = found[0].length
      match = found
    }
    if (best === undefined || index < best.index) best = { which, match, index, length }
  }
  if (best === undefined) return undefined
  const start = cursorOffset + Buffer.byteLength(text.slice(cursor, best.index))
  return {
    which: best.which,
    match: best.match,
    start,
    end: start + Buffer.byteLength(text.slice(best.index, best.index + best.length))
  }
}
