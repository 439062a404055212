/**
 * A key for a value made of plain data, equal for two values exactly when a decoder must give
 * both the same result: every primitive is tagged with its type (so `NaN`, `Infinity`, `null`,
 * `"1"` and `1` all differ), Durations are keyed by their value, and anything else (functions,
 * symbols, class instances, cycles, getters) has no key at all, so that a cache keyed by it is
 * never consulted for such a value.
 *
 * @internal
 */
import * as Duration from "effect/Duration"

const tagged = (value: unknown, depth: number): string | undefined => {
  switch (typeof value) {
    case "string":
      return `s${JSON.stringify(value)}`
    case "number":
      return `n${Object.is(value, -0) ? "-0" : String(value)}`
    case "boolean":
      return value ? "t" : "f"
    case "undefined":
      return "u"
    case "object":
      return value === null ? "z" : compound(value, depth)
    default:
      return undefined
  }
}

const compound = (value: object, depth: number): string | undefined => {
  if (depth > 8) return undefined
  if (Duration.isDuration(value)) {
    return `d${JSON.stringify(value.value, (_, v) => typeof v === "bigint" ? `${v}n` : v)}`
  }
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return undefined
    const parts: Array<string> = []
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) return undefined // a hole
      const part = tagged(value[i], depth + 1)
      if (part === undefined) return undefined
      parts.push(part)
    }
    return Object.keys(value).length === value.length ? `[${parts.join(",")}]` : undefined
  }
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) return undefined
  if (Object.getOwnPropertySymbols(value).length > 0) return undefined
  const parts: Array<string> = []
  for (const key of Object.keys(value)) {
    const descriptor = Object.getOwnPropertyDescriptor(value, key)!
    if (!("value" in descriptor)) return undefined // a getter may answer differently next time
    const part = tagged(descriptor.value, depth + 1)
    if (part === undefined) return undefined
    parts.push(`${JSON.stringify(key)}:${part}`)
  }
  return `{${parts.join(",")}}`
}

/** The key of `value`, or `undefined` when it is not plain data (see the module's description). */
export const shapeKey = (value: unknown): string | undefined => tagged(value, 0)

/**
 * A small cache of results by {@link shapeKey}: `get` computes (and keeps, up to `capacity`
 * entries, oldest dropped first) what is not there yet; a value with no key is always computed.
 */
export class ShapeCache<A> {
  private readonly entries = new Map<string, A>()
  constructor(private readonly capacity: number) {}

  get(input: unknown, compute: () => A, keep: (result: A) => boolean): A {
    const key = shapeKey(input)
    if (key === undefined) return compute()
    const known = this.entries.get(key)
    if (known !== undefined) return known
    const result = compute()
    if (keep(result)) {
      if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value!)
      this.entries.set(key, result)
    }
    return result
  }
}
