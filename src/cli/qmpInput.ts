/**
 * What the `qmp` shell reads and prints, apart from any I/O: a line typed as `command arg=value ...`
 * or as a JSON object becomes a QMP request; completion of command and argument names; JSON
 * pretty-printed with big integers kept exact.
 *
 * @since 0.2.0
 */
import * as Either from "effect/Either"
import * as ExactJson from "../internal/exactJson.js"

/**
 * A QMP request read from a line.
 *
 * @since 0.2.0
 * @category models
 */
export interface Request {
  readonly command: string
  readonly arguments: Record<string, unknown> | undefined
}

/**
 * What a line asks for: a request, leaving the shell, or nothing (a blank line).
 *
 * @since 0.2.0
 * @category models
 */
export type Input =
  | { readonly _tag: "Request"; readonly request: Request }
  | { readonly _tag: "Leave" }
  | { readonly _tag: "Blank" }

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const fromJson = (line: string): Either.Either<Input, string> => {
  let value: unknown
  try {
    value = ExactJson.parse(line)
  } catch (error) {
    return Either.left(`not JSON: ${(error as Error).message}`)
  }
  if (!isRecord(value) || typeof value.execute !== "string") {
    return Either.left(`a JSON request is an object with "execute" (a command name) and, optionally, "arguments"`)
  }
  const extra = Object.keys(value).filter((key) => key !== "execute" && key !== "arguments")
  if (extra.length > 0) return Either.left(`unexpected member ${JSON.stringify(extra[0])} next to "execute"`)
  if (value.arguments !== undefined && !isRecord(value.arguments)) return Either.left(`"arguments" must be an object`)
  return Either.right({ _tag: "Request", request: { command: value.execute, arguments: value.arguments } })
}

/**
 * Splits a line into words on whitespace outside quotes, brackets and braces, so that
 * `a=[1, 2]` and `b="x y"` stay whole.
 *
 * @since 0.2.0
 * @category parsing
 */
export const words = (line: string): Either.Either<ReadonlyArray<string>, string> => {
  const out: Array<string> = []
  let current = ""
  let depth = 0
  let quote: string | undefined
  for (let i = 0; i < line.length; i++) {
    const c = line[i]
    if (quote !== undefined) {
      if (c === "\\" && quote === "\"" && i + 1 < line.length) current += c + line[++i]
      else current += c
      if (c === quote) quote = undefined
      continue
    }
    if (c === "\"" || c === "'") quote = c
    else if (c === "[" || c === "{") depth++
    else if (c === "]" || c === "}") depth--
    if (depth === 0 && /\s/.test(c)) {
      if (current !== "") out.push(current)
      current = ""
    } else current += c
  }
  if (quote !== undefined) return Either.left(`unterminated ${quote} quote`)
  if (depth !== 0) return Either.left("unbalanced brackets")
  if (current !== "") out.push(current)
  return Either.right(out)
}

/**
 * The value of `key=value`: JSON when it reads as JSON (numbers, `true`, `false`, `null`, quoted
 * strings, arrays, objects; integers beyond 2^53 exactly), `'single-quoted'` text as that text,
 * and anything else as the text itself (`id=disk0`).
 *
 * @since 0.2.0
 * @category parsing
 */
export const parseValue = (text: string): Either.Either<unknown, string> => {
  if (text.length >= 2 && text.startsWith("'") && text.endsWith("'")) return Either.right(text.slice(1, -1))
  try {
    return Either.right(ExactJson.parse(text))
  } catch (error) {
    if (/^["[{]/.test(text)) return Either.left(`${text} is not valid JSON: ${(error as Error).message}`)
    return Either.right(text)
  }
}

/** Sets `a.b.c` in `target`, creating the objects on the way; refuses to overwrite. */
const setPath = (target: Record<string, unknown>, key: string, value: unknown): string | undefined => {
  const parts = key.split(".")
  if (parts.some((part) => part === "")) return `${JSON.stringify(key)} is not a member name`
  let at = target
  for (const part of parts.slice(0, -1)) {
    const next = at[part] ?? (at[part] = {})
    if (!isRecord(next)) return `${key} sets a member inside ${part}, which already has a value`
    at = next
  }
  const last = parts[parts.length - 1]
  if (Object.hasOwn(at, last)) return `${key} is given twice`
  at[last] = value
  return undefined
}

const fromWords = (all: ReadonlyArray<string>): Either.Either<Input, string> => {
  const [command, ...pairs] = all
  const args: Record<string, unknown> = {}
  for (const pair of pairs) {
    const equals = pair.indexOf("=")
    if (equals <= 0) return Either.left(`${JSON.stringify(pair)} is not name=value`)
    const value = parseValue(pair.slice(equals + 1))
    if (Either.isLeft(value)) return Either.left(`${pair.slice(0, equals)}: ${value.left}`)
    const problem = setPath(args, pair.slice(0, equals), value.right)
    if (problem !== undefined) return Either.left(problem)
  }
  return Either.right({
    _tag: "Request",
    request: { command, arguments: pairs.length > 0 ? args : undefined }
  })
}

/**
 * Reads one line of the shell: `quit`/`exit` leave, a JSON object is sent as it is, anything else
 * is `command name=value ...` (dotted names such as `a.b=1` build nested objects). Returns what is
 * wrong with a line that is neither.
 *
 * @since 0.2.0
 * @category parsing
 * @example
 * ```ts
 * parseLine("blockdev-add driver=null-co node-name=n0 size=1048576")
 * // Right({ _tag: "Request", request: { command: "blockdev-add", arguments: { driver: "null-co", "node-name": "n0", size: 1048576 } } })
 * ```
 */
export const parseLine = (line: string): Either.Either<Input, string> => {
  const text = line.trim()
  if (text === "") return Either.right({ _tag: "Blank" })
  if (text === "quit" || text === "exit") return Either.right({ _tag: "Leave" })
  if (text.startsWith("{")) return fromJson(text)
  return Either.flatMap(words(text), fromWords)
}

/**
 * The names the shell completes: every command, and the argument names of each.
 *
 * @since 0.2.0
 * @category models
 */
export interface Catalog {
  readonly commands: ReadonlyArray<string>
  readonly argumentsOf: ReadonlyMap<string, ReadonlyArray<string>>
}

/**
 * A `node:readline` completer: the command name in the first word, then `name=` for the
 * command's arguments not given yet.
 *
 * @since 0.2.0
 * @category constructors
 */
export const completer = (catalog: Catalog) => (line: string): [Array<string>, string] => {
  if (line.trimStart().startsWith("{")) return [[], line]
  const word = /(\S*)$/.exec(line)![1]
  const before = line.slice(0, line.length - word.length)
  if (before.trim() === "") return [catalog.commands.filter((name) => name.startsWith(word)), word]
  if (word.includes("=")) return [[], word]
  const command = before.trim().split(/\s+/)[0]
  const given = new Set(before.trim().split(/\s+/).slice(1).map((pair) => pair.split("=")[0]))
  const names = (catalog.argumentsOf.get(command) ?? []).filter((name) => !given.has(name))
  return [names.filter((name) => name.startsWith(word)).map((name) => `${name}=`), word]
}

const isObjectInfo = (info: Record<string, unknown>) => info["meta-type"] === "object" && Array.isArray(info.members)

/**
 * The catalog of a `query-qmp-schema` reply: each command with the members of its argument type.
 * Entries of a shape this does not know are skipped.
 *
 * @since 0.2.0
 * @category constructors
 */
export const catalogFromSchema = (schema: unknown): Catalog => {
  const infos = Array.isArray(schema) ? schema.filter(isRecord) : []
  const members = new Map<string, ReadonlyArray<string>>()
  for (const info of infos) {
    if (isObjectInfo(info) && typeof info.name === "string") {
      members.set(info.name, (info.members as Array<unknown>).filter(isRecord).map((m) => String(m.name)))
    }
  }
  const argumentsOf = new Map<string, ReadonlyArray<string>>()
  for (const info of infos) {
    if (info["meta-type"] !== "command" || typeof info.name !== "string") continue
    argumentsOf.set(info.name, typeof info["arg-type"] === "string" ? members.get(info["arg-type"]) ?? [] : [])
  }
  return { commands: [...argumentsOf.keys()].sort(), argumentsOf }
}

/**
 * The catalog of a `query-commands` reply: command names only (QEMU before 2.5 has no
 * `query-qmp-schema`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const catalogFromCommands = (commands: unknown): Catalog => ({
  commands: (Array.isArray(commands) ? commands : [])
    .filter(isRecord)
    .map((command) => command.name)
    .filter((name): name is string => typeof name === "string")
    .sort(),
  argumentsOf: new Map()
})

/**
 * JSON indented by two spaces (as `JSON.stringify(value, null, 2)` writes it), with `bigint`s
 * written as the exact integers they are.
 *
 * @since 0.2.0
 * @category formatting
 */
export const pretty = (value: unknown, indent = ""): string => {
  if (typeof value === "bigint") return value.toString()
  if (typeof value !== "object" || value === null) return JSON.stringify(value) ?? "null"
  const inner = `${indent}  `
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]"
    return `[\n${value.map((item) => `${inner}${pretty(item, inner)}`).join(",\n")}\n${indent}]`
  }
  const entries = Object.entries(value).filter(([, item]) => item !== undefined)
  if (entries.length === 0) return "{}"
  const members = entries.map(([key, item]) => `${inner}${JSON.stringify(key)}: ${pretty(item, inner)}`)
  return `{\n${members.join(",\n")}\n${indent}}`
}
