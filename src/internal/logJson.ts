/**
 * JSON printed as iotests print it (Python's `json.dumps` with its default separators `", "` and
 * `": "`, ASCII only), but with every object's keys in the order they came: QEMU's order for
 * replies and events, the caller's for arguments. Big integers keep all their digits.
 *
 * @internal
 */

const escapeString = (text: string): string =>
  JSON.stringify(text).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Prints `value`; `indent` (spaces) spreads objects and arrays over lines as `json.dumps` does. */
export const format = (value: unknown, indent?: number): string => print(value, indent, "")

const print = (value: unknown, indent: number | undefined, pad: string): string => {
  if (value === null || value === undefined) return "null"
  if (typeof value === "string") return escapeString(value)
  if (typeof value === "bigint") return value.toString()
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "null"
  if (typeof value === "boolean") return String(value)
  if (Array.isArray(value)) {
    return wrap("[", "]", value.map((item) => (inner: string) => print(item, indent, inner)), indent, pad)
  }
  if (isPlainObject(value)) {
    const members = Object.entries(value).filter(([, member]) => member !== undefined)
    return wrap(
      "{",
      "}",
      members.map(([key, member]) => (inner: string) => `${escapeString(key)}: ${print(member, indent, inner)}`),
      indent,
      pad
    )
  }
  return escapeString(String(value))
}

const wrap = (
  open: string,
  close: string,
  items: ReadonlyArray<(pad: string) => string>,
  indent: number | undefined,
  pad: string
): string => {
  if (items.length === 0) return open + close
  if (indent === undefined) return open + items.map((item) => item(pad)).join(", ") + close
  const inner = pad + " ".repeat(indent)
  return `${open}\n${items.map((item) => inner + item(inner)).join(",\n")}\n${pad}${close}`
}
