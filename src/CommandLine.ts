/**
 * Builders for the QEMU options tests add over and over: `-blockdev` from a QMP-shaped object,
 * `-drive`, `-device`, `-netdev`, `-object` and `-incoming`. Nested objects and arrays are
 * flattened into dotted keys as QEMU's own `qmp_to_opts` does (`file.filename=...`, `key.0=...`),
 * booleans are written `on`/`off`, and a comma inside a value is doubled. A value the option syntax
 * cannot express (a `null`, an empty list, a key with a comma, a NUL byte) is refused with a
 * {@link CommandLineError} instead of being dropped or mangled.
 *
 * Every builder returns an `Either` of the argument list: use it as it is, or `yield*` it inside
 * `Effect.gen` (an `Either` is an `Effect`).
 *
 * @example
 * ```ts
 * import { CommandLine } from "effect-qemu"
 *
 * CommandLine.blockdev({
 *   driver: "qcow2",
 *   "node-name": "disk0",
 *   file: { driver: "file", filename: "/tmp/a,b.qcow2" },
 *   cache: { direct: false }
 * })
 * // Right(["-blockdev", "driver=qcow2,node-name=disk0,file.driver=file,file.filename=/tmp/a,,b.qcow2,cache.direct=off"])
 * ```
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import type { CommandArgs } from "./QmpCommands.js"

/**
 * A value of an option: scalars, and objects and arrays of them (flattened into dotted keys).
 *
 * @since 0.2.0
 * @category models
 */
export type OptionValue = string | number | bigint | boolean | ReadonlyArray<OptionValue> | OptionsObject

/**
 * An options object, as QMP spells it. Members that are `undefined` are left out.
 *
 * @since 0.2.0
 * @category models
 */
export interface OptionsObject {
  readonly [key: string]: OptionValue | undefined
}

/**
 * A value that cannot be written as a QEMU option. `option` is the option being built (e.g.
 * `-blockdev`), `path` the member (`file.filename`, `children.0`), `detail` what to change.
 *
 * @since 0.2.0
 * @category errors
 */
export class CommandLineError extends Data.TaggedError("CommandLineError")<{
  readonly option: string
  readonly path: string
  readonly detail: string
}> {
  get message(): string {
    return `${this.option}${this.path.length > 0 ? ` ${this.path}` : ""}: ${this.detail}`
  }
}

/**
 * Escapes a value placed inside a QEMU option string (`key=value,...`): a comma is written twice,
 * which both of QEMU's option parsers (QemuOpts and keyval) read back as one.
 *
 * @since 0.2.0
 * @category combinators
 */
export const escape = (value: string): string => value.replaceAll(",", ",,")

type Pairs = Array<readonly [string, string]>

interface Walk {
  readonly option: string
  readonly out: Pairs
  readonly seen: Set<string>
  readonly ancestors: Set<object>
  readonly repeatLists: boolean
}

const fail = (walk: Walk, path: string, detail: string) => new CommandLineError({ option: walk.option, path, detail })

const scalarText = (walk: Walk, path: string, value: unknown): string | CommandLineError => {
  switch (typeof value) {
    case "string":
      return value.includes("\0") ? fail(walk, path, "a NUL character cannot be passed on a command line") : value
    case "boolean":
      return value ? "on" : "off"
    case "bigint":
      return value.toString()
    case "number":
      if (!Number.isFinite(value)) return fail(walk, path, `${value} has no option form; give a finite number`)
      return Number.isInteger(value) ? BigInt(value).toString() : String(value)
    default:
      return fail(
        walk,
        path,
        value === null
          ? "null has no option form; leave the member out, or pass the option as JSON"
          : `a ${typeof value} has no option form`
      )
  }
}

const checkKey = (walk: Walk, path: string, key: string): CommandLineError | undefined => {
  if (key.length === 0) return fail(walk, path, "an empty key cannot be written")
  if (/[,=\0]/.test(key)) return fail(walk, path, `the key "${key}" contains ',', '=' or NUL, which end a key`)
  if (key.startsWith(".") || key.endsWith(".") || key.includes("..")) {
    return fail(walk, path, `the key "${key}" has an empty dotted part`)
  }
  return undefined
}

const emit = (walk: Walk, path: string, text: string, repeated = false): CommandLineError | undefined => {
  if (walk.seen.has(path) && !repeated) {
    return fail(walk, path, "given twice (once nested, once dotted?); QEMU would read only one")
  }
  walk.seen.add(path)
  walk.out.push([path, text])
  return undefined
}

const isScalar = (value: unknown) => typeof value !== "object" || value === null

const flattenArray = (walk: Walk, path: string, items: ReadonlyArray<unknown>): CommandLineError | undefined => {
  if (items.length === 0) return fail(walk, path, "an empty list has no option form; leave it out or pass JSON")
  if (walk.repeatLists && items.every(isScalar)) {
    if (walk.seen.has(path)) return fail(walk, path, "given twice")
    for (const item of items) {
      const text = scalarText(walk, path, item)
      if (typeof text !== "string") return text
      emit(walk, path, text, true)
    }
    return undefined
  }
  for (let index = 0; index < items.length; index++) {
    const error = flattenValue(walk, `${path}.${index}`, items[index])
    if (error !== undefined) return error
  }
  return undefined
}

const flattenObject = (walk: Walk, path: string, record: Record<string, unknown>): CommandLineError | undefined => {
  const keys = Object.keys(record).filter((key) => record[key] !== undefined)
  if (keys.length === 0) return fail(walk, path, "an empty object has no option form; leave it out or pass JSON")
  for (const key of keys) {
    const inner = path.length === 0 ? key : `${path}.${key}`
    const error = checkKey(walk, inner, key) ?? flattenValue(walk, inner, record[key])
    if (error !== undefined) return error
  }
  return undefined
}

const flattenValue = (walk: Walk, path: string, value: unknown): CommandLineError | undefined => {
  if (isScalar(value)) {
    const text = scalarText(walk, path, value)
    return typeof text === "string" ? emit(walk, path, text) : text
  }
  const object = value as object
  if (walk.ancestors.has(object)) return fail(walk, path, "the value contains itself")
  walk.ancestors.add(object)
  const error = Array.isArray(object)
    ? flattenArray(walk, path, object)
    : flattenObject(walk, path, object as Record<string, unknown>)
  walk.ancestors.delete(object)
  return error
}

/**
 * Flattens an options object into `[dotted key, value]` pairs, values not yet escaped: nested
 * objects become `outer.inner`, arrays `list.0`, `list.1`; with `repeatLists`, an array of
 * scalars becomes the same key repeated (the form QemuOpts options such as `-netdev user`'s
 * `hostfwd` take).
 *
 * @since 0.2.0
 * @category combinators
 */
export const flatten = (
  value: OptionsObject,
  options: { readonly option?: string; readonly repeatLists?: boolean } = {}
): Either.Either<ReadonlyArray<readonly [string, string]>, CommandLineError> => {
  const walk: Walk = {
    option: options.option ?? "options",
    out: [],
    seen: new Set(),
    ancestors: new Set(),
    repeatLists: options.repeatLists ?? false
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return Either.left(fail(walk, "", "expected an object of options"))
  }
  walk.ancestors.add(value)
  const error = flattenObject(walk, "", value as Record<string, unknown>)
  return error === undefined ? Either.right(walk.out) : Either.left(error)
}

/**
 * Writes an options object as one option string, `key=value,...`, flattened and escaped. With
 * `implied`, that member is written first as a bare value (`virtio-blk-pci,drive=d0` for
 * `implied: "driver"`), as `-device`, `-netdev` and `-object` take their type.
 *
 * @since 0.2.0
 * @category combinators
 */
export const optionString = (
  value: OptionsObject,
  options: { readonly option?: string; readonly implied?: string; readonly repeatLists?: boolean } = {}
): Either.Either<string, CommandLineError> =>
  Either.flatMap(flatten(value, options), (pairs) => {
    const implied = options.implied === undefined ? undefined : pairs.find(([key]) => key === options.implied)
    const parts = pairs.filter((pair) => pair !== implied).map(([key, text]) => `${key}=${escape(text)}`)
    if (implied !== undefined) {
      const [key, text] = implied
      // A bare value with '=' would be read as key=value; the explicit form says the same.
      parts.unshift(text.includes("=") || text.startsWith("{") ? `${key}=${escape(text)}` : escape(text))
    }
    return Either.right(parts.join(","))
  })

const build = (
  flag: string,
  value: OptionsObject,
  options: { readonly implied?: string; readonly required?: string; readonly repeatLists?: boolean } = {}
): Either.Either<ReadonlyArray<string>, CommandLineError> => {
  const required = options.required ?? options.implied
  if (required !== undefined && typeof value?.[required] !== "string") {
    return Either.left(new CommandLineError({ option: flag, path: required, detail: `give "${required}" as a string` }))
  }
  return Either.map(optionString(value, { ...options, option: flag }), (text) => [flag, text])
}

/**
 * The arguments of `blockdev-add` as typed by the QMP surface.
 *
 * @since 0.2.0
 * @category models
 */
export type BlockdevOptions = CommandArgs<"blockdev-add">

/**
 * `-blockdev` from the object `blockdev-add` takes, nested objects flattened into dotted keys.
 *
 * @since 0.2.0
 * @category constructors
 */
export const blockdev = (options: BlockdevOptions): Either.Either<ReadonlyArray<string>, CommandLineError> =>
  build("-blockdev", options as unknown as OptionsObject, { required: "driver" })

/**
 * `-drive` from its options (`file`, `if`, `format`, `id`, `node-name`, dotted or nested driver
 * options such as `file: { locking: false }`).
 *
 * @since 0.2.0
 * @category constructors
 */
export const drive = (options: OptionsObject): Either.Either<ReadonlyArray<string>, CommandLineError> =>
  build("-drive", options)

/**
 * `-device` from the object `device_add` takes: `driver` first, then its properties.
 *
 * @since 0.2.0
 * @category constructors
 */
export const device = (
  options: { readonly driver: string } & OptionsObject
): Either.Either<ReadonlyArray<string>, CommandLineError> => build("-device", options, { implied: "driver" })

/**
 * `-netdev` from the object `netdev_add` takes: `type` first, then its options. An array of
 * scalars becomes the key repeated (`hostfwd: ["tcp::2222-:22", ...]`), as QEMU's legacy netdev
 * syntax takes it; nested objects become dotted keys (`addr.type=unix`, as `stream` takes them).
 *
 * @since 0.2.0
 * @category constructors
 */
export const netdev = (
  options: { readonly type: string; readonly id: string } & OptionsObject
): Either.Either<ReadonlyArray<string>, CommandLineError> =>
  build("-netdev", options, { implied: "type", repeatLists: true })

/**
 * `-object` from the object `object-add` takes: `qom-type` first, then `id` and its properties.
 *
 * @since 0.2.0
 * @category constructors
 */
export const object = (
  options: { readonly "qom-type": string; readonly id: string } & OptionsObject
): Either.Either<ReadonlyArray<string>, CommandLineError> => build("-object", options, { implied: "qom-type" })

/**
 * Where an incoming migration is read from: `"defer"` (wait for `migrate-incoming`), a UNIX socket
 * path, a TCP address to listen on, a descriptor QEMU inherited, or a shell command to read from.
 *
 * @since 0.2.0
 * @category models
 */
export type Incoming =
  | "defer"
  | { readonly unix: string }
  | { readonly tcp: { readonly host: string; readonly port: number } }
  | { readonly fd: number }
  | { readonly exec: string }

const incomingUri = (source: Incoming): string | string[] => {
  if (source === "defer") return "defer"
  if ("unix" in source) return source.unix.length === 0 ? ["unix", "give a socket path"] : `unix:${source.unix}`
  if ("exec" in source) return source.exec.length === 0 ? ["exec", "give a command"] : `exec:${source.exec}`
  if ("fd" in source) {
    return Number.isSafeInteger(source.fd) && source.fd >= 0 ? `fd:${source.fd}` : ["fd", "give a descriptor number"]
  }
  const { host, port } = source.tcp
  if (!Number.isInteger(port) || port < 0 || port > 65535) return ["tcp.port", "give a port from 0 to 65535"]
  // A comma starts socket options after host:port; a bare IPv6 address needs brackets.
  if (host.length === 0 || /[,\s\0]/.test(host)) return ["tcp.host", `"${host}" is not a host name or address`]
  return `tcp:${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`
}

/**
 * `-incoming` for a machine that waits for a migration.
 *
 * @since 0.2.0
 * @category constructors
 * @example
 * ```ts
 * import { CommandLine } from "effect-qemu"
 *
 * CommandLine.incoming({ unix: "/tmp/migrate.sock" }) // Right(["-incoming", "unix:/tmp/migrate.sock"])
 * CommandLine.incoming("defer")                        // Right(["-incoming", "defer"])
 * ```
 */
export const incoming = (source: Incoming): Either.Either<ReadonlyArray<string>, CommandLineError> => {
  const uri = incomingUri(source)
  if (typeof uri !== "string") {
    return Either.left(new CommandLineError({ option: "-incoming", path: uri[0], detail: uri[1] }))
  }
  if (uri.includes("\0")) {
    return Either.left(
      new CommandLineError({ option: "-incoming", path: "", detail: "a NUL character cannot be passed" })
    )
  }
  return Either.right(["-incoming", uri])
}
