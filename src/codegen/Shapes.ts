/**
 * From introspection's masked, numbered types to named shapes: structurally identical types are
 * merged into one shape, and every shape that needs a declaration gets a readable name derived
 * from where it is first used.
 *
 * @since 0.1.0
 */
import type { CommandInfo, EventInfo, SchemaIndex, SchemaInfo } from "../QmpIntrospection.js"
import { enumValues, isOptional } from "../QmpIntrospection.js"

/**
 * A place where a shape is used, for names and doc comments.
 *
 * @since 0.1.0
 * @category models
 */
export type Usage =
  | { readonly _tag: "CommandArgs"; readonly command: string }
  | { readonly _tag: "CommandReturn"; readonly command: string; readonly element: boolean }
  | { readonly _tag: "EventData"; readonly event: string }
  | { readonly _tag: "Member"; readonly owner: string; readonly member: string }
  | { readonly _tag: "Variant"; readonly owner: string; readonly case: string }
  | { readonly _tag: "Alternative"; readonly owner: string }

/**
 * The merged view of a schema: each introspection type name maps to a shape id, and each shape
 * that is declared (objects, enums, alternates) has a unique name and its usages.
 *
 * @since 0.1.0
 * @category models
 */
export interface Shapes {
  /** Shape id of every type name of the schema. */
  readonly shapeOf: ReadonlyMap<string, number>
  /** One representative introspection entity per shape. */
  readonly representative: ReadonlyMap<number, SchemaInfo>
  /** Names of the declared shapes. */
  readonly names: ReadonlyMap<number, string>
  /** Usages of the declared shapes, the naming one first. */
  readonly usages: ReadonlyMap<number, ReadonlyArray<Usage>>
  /** The shape of the empty object, when the schema has one. */
  readonly empty: number | undefined
  readonly commands: ReadonlyArray<CommandInfo>
  readonly events: ReadonlyArray<EventInfo>
  /**
   * Names of a command's arguments or result (or its element) and of an event's data that did not
   * name their shape because another use named it first: each is declared as an alias, so that
   * every command and event has its `…Args`, `…Return` and `…Data` names whatever it shares.
   */
  readonly aliases: ReadonlyArray<{ readonly name: string; readonly shape: number; readonly usage: Usage }>
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)

// Which entities refer to which, in a fixed order, so that both merging and naming can walk them.
const references = (info: SchemaInfo): ReadonlyArray<string> => {
  switch (info["meta-type"]) {
    case "array":
      return [info["element-type"]]
    case "object":
      return [...info.members.map((m) => m.type), ...(info.variants ?? []).map((v) => v.type)]
    case "alternate":
      return info.members.map((m) => m.type)
    default:
      return []
  }
}

// What two types must share, apart from the shapes they refer to, to be the same shape. Features
// are part of it: merging a deprecated member with a current one would lose the deprecation.
const localSignature = (info: SchemaInfo): string => {
  switch (info["meta-type"]) {
    case "builtin":
      return JSON.stringify(["builtin", info.name])
    case "enum":
      return JSON.stringify([
        "enum",
        enumValues(info),
        (info.members ?? []).map((m) => m.features ?? []),
        info.features ?? []
      ])
    case "array":
      return "array"
    case "object":
      return JSON.stringify([
        "object",
        info.members.map((m) => [m.name, isOptional(m), m.features ?? []]),
        info.tag ?? null,
        (info.variants ?? []).map((v) => v.case),
        info.features ?? []
      ])
    case "alternate":
      return JSON.stringify(["alternate", info.members.length, info.features ?? []])
    default:
      return JSON.stringify([info["meta-type"], info.name])
  }
}

/**
 * Splits a QAPI name (`query-status`, `BLOCK_JOB_COMPLETED`, `node-name`, `__com.vendor_x`) into
 * PascalCase. All-capital words are lowered first so that event names read like type names.
 *
 * @since 0.1.0
 * @category combinators
 */
export const pascalCase = (name: string): string =>
  name
    .split(/[^A-Za-z0-9]+/)
    .filter((part) => part.length > 0)
    .map((part) => (part === part.toUpperCase() ? part.toLowerCase() : part))
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join("")

// Names the generated module declares or uses itself; shape names must not take them.
const reservedNames = new Set([
  "Commands",
  "Events",
  "QmpSchemas",
  "QmpInteger",
  "Schema",
  "Empty",
  "ReadonlyArray",
  "Record",
  "Readonly"
])

/**
 * Merges structurally identical types (partition refinement: start from what each type says about
 * itself, then split classes by the classes they refer to until nothing splits), then names the
 * shapes breadth-first from commands (sorted), then events (sorted), so a shape takes the name of
 * its shallowest first use: `QueryStatusReturn`, `QueryStatusReturnStatus`, `BlockdevAddArgs`,
 * `ShutdownData`. Arrays take no name: `[T]` is written `ReadonlyArray<T>`, and its element is
 * named after the array's use with `Item` appended.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeShapes = (index: SchemaIndex): Shapes => {
  const typeNames = [...index.types.keys()].sort(compare)
  const local = new Map(typeNames.map((name) => [name, localSignature(index.types.get(name)!)]))

  let shapeOf = new Map<string, number>(typeNames.map((name) => [name, 0]))
  let count = 1
  for (;;) {
    const signatures = new Map<string, string>()
    for (const name of typeNames) {
      const refs = references(index.types.get(name)!).map((ref) => shapeOf.get(ref) ?? -1)
      signatures.set(name, JSON.stringify([shapeOf.get(name), local.get(name), refs]))
    }
    const distinct = [...new Set(signatures.values())].sort(compare)
    const ids = new Map(distinct.map((signature, i) => [signature, i]))
    const next = new Map(typeNames.map((name) => [name, ids.get(signatures.get(name)!)!]))
    const stable = distinct.length === count
    shapeOf = next
    count = distinct.length
    if (stable) break
  }

  const representative = new Map<number, SchemaInfo>()
  for (const name of typeNames) {
    const shape = shapeOf.get(name)!
    if (!representative.has(shape)) representative.set(shape, index.types.get(name)!)
  }

  const emptyInfo = typeNames
    .map((name) => index.types.get(name)!)
    .find((info) => info["meta-type"] === "object" && info.members.length === 0 && info.variants === undefined)
  const empty = emptyInfo === undefined ? undefined : shapeOf.get(emptyInfo.name)

  const commands = [...index.commands.values()].sort((a, b) => compare(a.name, b.name))
  const events = [...index.events.values()].sort((a, b) => compare(a.name, b.name))

  const names = new Map<number, string>()
  const usages = new Map<number, Array<Usage>>()
  const taken = new Set(reservedNames)
  if (empty !== undefined) names.set(empty, "Empty")
  const queue: Array<number> = []
  const aliases: Array<{ name: string; shape: number; usage: Usage }> = []
  const free = (name: string): boolean => !taken.has(name) && !taken.has(`${name}Base`)
  const take = (name: string): string => {
    const base = /^[A-Za-z]/.test(name) ? name : `T${name}`
    let unique = base
    for (let n = 2; !free(unique); n++) unique = `${base}${n}`
    taken.add(unique)
    taken.add(`${unique}Base`)
    return unique
  }

  // Offers a name to the shape behind `type`, looking through arrays; the first offer wins.
  const use = (type: string, name: string, usage: Usage): void => {
    let info = index.types.get(type)
    let suggested = name
    while (info !== undefined && info["meta-type"] === "array") {
      info = index.types.get(info["element-type"])
      suggested = `${suggested}Item`
      if (usage._tag === "CommandReturn") usage = { ...usage, element: true }
    }
    if (info === undefined || info["meta-type"] === "builtin") return
    const shape = shapeOf.get(info.name)!
    const list = usages.get(shape) ?? []
    list.push(usage)
    usages.set(shape, list)
    const topLevel = usage._tag === "CommandArgs" || usage._tag === "CommandReturn" || usage._tag === "EventData"
    if (names.has(shape)) {
      if (topLevel && names.get(shape) !== "Empty") aliases.push({ name: take(suggested), shape, usage })
      return
    }
    // A union `X` also declares `XBase`, so both must be free.
    const unique = take(suggested)
    names.set(shape, unique)
    queue.push(shape)
  }

  // No arguments and no event data are written `undefined`, not as the empty object.
  const isEmpty = (type: string): boolean => empty !== undefined && shapeOf.get(type) === empty
  for (const command of commands) {
    if (!isEmpty(command["arg-type"])) {
      use(command["arg-type"], `${pascalCase(command.name)}Args`, { _tag: "CommandArgs", command: command.name })
    }
    use(command["ret-type"], `${pascalCase(command.name)}Return`, {
      _tag: "CommandReturn",
      command: command.name,
      element: false
    })
  }
  for (const event of events) {
    if (!isEmpty(event["arg-type"])) {
      use(event["arg-type"], `${pascalCase(event.name)}Data`, { _tag: "EventData", event: event.name })
    }
  }
  if (empty !== undefined) queue.push(empty)

  for (let i = 0; i < queue.length; i++) {
    const shape = queue[i]
    const owner = names.get(shape)!
    const info = representative.get(shape)!
    if (info["meta-type"] === "object") {
      for (const member of info.members) {
        use(member.type, `${owner}${pascalCase(member.name)}`, { _tag: "Member", owner, member: member.name })
      }
      for (const variant of info.variants ?? []) {
        use(variant.type, `${owner}${pascalCase(variant.case)}`, { _tag: "Variant", owner, case: variant.case })
      }
    } else if (info["meta-type"] === "alternate") {
      for (const alternative of info.members) {
        const target = index.types.get(alternative.type)
        const kind = target === undefined ? "Value" : pascalCase(target["meta-type"])
        use(alternative.type, `${owner}${kind}`, { _tag: "Alternative", owner })
      }
    }
  }

  return { shapeOf, representative, names, usages, empty, commands, events, aliases }
}
