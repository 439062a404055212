/**
 * JSON that keeps every integer exact, as QMP needs it.
 *
 * QAPI's `int`, `int64`, `uint64` and `size` are 64-bit; a JavaScript number holds integers exactly
 * only up to 2^53. So on the way out, a `bigint` (and a number beyond the safe range, whose exact
 * value is an integer) is written with all its digits; on the way in, an integer literal outside
 * the safe range becomes a `bigint` with exactly the digits QEMU sent. Messages without such
 * values, nearly all of them, take the plain `JSON` path: the careful one runs only when a cheap
 * check says it may be needed.
 *
 * @internal
 */

// The marker of a big integer while it travels through `JSON` as a string. Random per process, so
// that no string a peer or a caller sends can be mistaken for one.
const nonce = `eqint${Math.random().toString(36).slice(2)}${Date.now().toString(36)}x`
const markerPattern = new RegExp(`"${nonce}(-?\\d+)"`, "g")

// Integers of 16 digits or more may be unsafe (2^53 has 16); shorter ones never are.
const longDigitRun = /\d{16}/

/**
 * Parses a JSON text; integers outside `Number`'s safe range come back as `bigint`. Throws what
 * `JSON.parse` throws for invalid JSON.
 */
export const parse = (text: string): unknown => {
  if (!longDigitRun.test(text)) return JSON.parse(text)
  const marked = markBigIntegers(text)
  if (marked === text) return JSON.parse(text)
  return restoreMarked(JSON.parse(marked))
}

/** Rewrites integer literals outside the safe range (outside strings) as marker strings. */
const markBigIntegers = (text: string): string => {
  let out = ""
  let copied = 0
  let i = 0
  const n = text.length
  while (i < n) {
    const c = text.charCodeAt(i)
    if (c === 0x22 /* " */) {
      i = skipString(text, i)
      continue
    }
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      const start = i
      i++
      while (i < n && isNumberChar(text.charCodeAt(i))) i++
      const token = text.slice(start, i)
      if (/^-?\d{16,}$/.test(token) && !Number.isSafeInteger(Number(token))) {
        out += text.slice(copied, start) + `"${nonce}${token}"`
        copied = i
      }
      continue
    }
    i++
  }
  return copied === 0 ? text : out + text.slice(copied)
}

const isNumberChar = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d

/** The index just past the string literal that starts at `start` (or the end of the text). */
const skipString = (text: string, start: number): number => {
  let i = start + 1
  while (i < text.length) {
    const c = text.charCodeAt(i)
    if (c === 0x5c /* \ */) i += 2
    else if (c === 0x22) return i + 1
    else i++
  }
  return i
}

const isMarked = (value: unknown): value is string => typeof value === "string" && value.startsWith(nonce)

/** Turns marker strings back into `bigint`s; iterative, so any depth `JSON.parse` accepted is fine. */
const restoreMarked = (root: unknown): unknown => {
  if (isMarked(root)) return BigInt(root.slice(nonce.length))
  const stack: Array<unknown> = [root]
  while (stack.length > 0) {
    const node = stack.pop()
    if (typeof node !== "object" || node === null) continue
    const record = node as Record<string, unknown>
    for (const key of Object.keys(record)) {
      const value = record[key]
      if (isMarked(value)) record[key] = BigInt(value.slice(nonce.length))
      else if (typeof value === "object" && value !== null) stack.push(value)
    }
  }
  return root
}

/** Why a value cannot be sent as JSON without changing it. */
export class NotSerializable {
  constructor(readonly path: string, readonly detail: string) {}
}

/** Limits of the peer's JSON parser that a message must stay within (QEMU's: see {@link qemuLimits}). */
export interface Limits {
  /** The deepest nesting of objects and arrays, the message itself counting as 1. */
  readonly maxNesting: number
  /** The most JSON tokens (punctuation, keys and values) in one message. */
  readonly maxTokens: number
  /** The longest string, in UTF-16 code units (a cheap bound on its bytes). */
  readonly maxStringLength: number
}

/**
 * QEMU's JSON parser refuses a message nested deeper than 1024, of more than 2^21 tokens, or with
 * a token over 64 MiB, and answers it with an error that carries no id (it could not read one).
 * Worse, after a nesting error it reads the rest of the message as more input and answers every
 * leftover bracket: a thousand error replies. So such a message is refused before it is sent.
 */
export const qemuLimits: Limits = { maxNesting: 1024, maxTokens: 2 * 1024 * 1024, maxStringLength: 21 * 1024 * 1024 }

/**
 * Serializes a value for QMP: `bigint`s and unsafe integers exactly; `NaN`, infinities,
 * `undefined` in arrays, functions, symbols and cycles are refused (plain `JSON` would turn them
 * into `null`, drop them or throw: a silently different value or a defect), and so is a message
 * beyond `limits`. Returns the text or why it cannot be sent.
 */
export const stringify = (value: unknown, limits: Limits = qemuLimits): string | NotSerializable => {
  const needs = inspect(value, limits)
  if (needs instanceof NotSerializable) return needs
  try {
    if (needs === "plain") return JSON.stringify(value)
    return JSON.stringify(value, exactReplacer).replace(markerPattern, "$1")
  } catch (error) {
    return new NotSerializable(
      "",
      error instanceof RangeError
        ? "the value is nested too deeply to serialize"
        : `the value cannot be serialized: ${error instanceof Error ? error.message : String(error)}`
    )
  }
}

function exactReplacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return nonce + value.toString()
  if (typeof value === "number" && !Number.isSafeInteger(value) && Number.isInteger(value)) {
    return nonce + BigInt(value).toString()
  }
  return value
}

interface Step {
  readonly parent: Step | undefined
  readonly key: string | number
}

const pathOf = (step: Step | undefined): string => {
  const parts: Array<string> = []
  for (let at = step; at !== undefined; at = at.parent) {
    parts.push(typeof at.key === "number" ? `[${at.key}]` : `.${at.key}`)
  }
  return parts.reverse().join("").replace(/^\./, "")
}

/** One iterative walk: whether the careful path is needed, or why the value cannot be sent. */
const inspect = (root: unknown, limits: Limits): "plain" | "exact" | NotSerializable => {
  let result: "plain" | "exact" = "plain"
  let tokens = 0
  const seen = new Set<object>()
  const stack: Array<readonly [unknown, Step | undefined, number]> = [[root, undefined, 1]]
  while (stack.length > 0) {
    const [value, step, depth] = stack.pop()!
    tokens++
    switch (typeof value) {
      case "number":
        if (!Number.isFinite(value)) return new NotSerializable(pathOf(step), `${value} has no JSON form`)
        if (!Number.isSafeInteger(value) && Number.isInteger(value)) result = "exact"
        break
      case "bigint":
        result = "exact"
        break
      case "string":
        if (value.length > limits.maxStringLength) {
          return new NotSerializable(pathOf(step), `a string of ${value.length} characters is longer than QMP accepts`)
        }
        break
      case "function":
      case "symbol":
        return new NotSerializable(pathOf(step), `a ${typeof value} has no JSON form`)
      case "object": {
        if (value === null) break
        if (depth > limits.maxNesting) {
          return new NotSerializable(pathOf(step), `nested deeper than QMP's limit of ${limits.maxNesting}`)
        }
        if (seen.has(value)) return new NotSerializable(pathOf(step), "the value refers to itself")
        seen.add(value)
        if (Array.isArray(value)) {
          tokens += value.length
          for (let i = 0; i < value.length; i++) {
            if (value[i] === undefined) {
              return new NotSerializable(pathOf({ parent: step, key: i }), "undefined has no JSON form")
            }
            stack.push([value[i], { parent: step, key: i }, depth + 1])
          }
        } else if (typeof (value as { toJSON?: unknown }).toJSON !== "function") {
          for (const key of Object.keys(value)) {
            const member = (value as Record<string, unknown>)[key]
            if (member === undefined) continue
            tokens += 3
            stack.push([member, { parent: step, key }, depth + 1])
          }
        }
        if (tokens > limits.maxTokens) {
          return new NotSerializable(pathOf(step), `more than QMP's limit of ${limits.maxTokens} JSON tokens`)
        }
        break
      }
    }
  }
  return result
}
