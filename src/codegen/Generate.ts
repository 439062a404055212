/**
 * Turns a `query-qmp-schema` reply into the TypeScript source of a typed QMP surface: one type and
 * one `Schema` per shape, the `Commands` and `Events` maps, and `QmpSchemas` for runtime decoding.
 *
 * A pure function of its input: the same schema always gives the same text, so the output can be
 * committed and regenerated in CI to catch drift.
 *
 * @since 0.1.0
 */
import type { CommandInfo, ObjectInfo, QemuVersion, SchemaInfo, SchemaInfoList } from "../QmpIntrospection.js"
import { enumValues, isOptional, makeIndex, takesExtraMembers } from "../QmpIntrospection.js"
import type { Shapes, Usage } from "./Shapes.js"
import { makeShapes } from "./Shapes.js"

/**
 * What the generated module says about itself and whether it plugs itself in.
 *
 * @since 0.1.0
 * @category models
 */
export interface GenerateOptions {
  /** The QEMU the schema came from, written into every doc comment, when known. */
  readonly version?: QemuVersion | undefined
  /**
   * When set, the module augments `QmpSurfaceRegistry` of this module specifier (for instance
   * `"effect-qemu/QmpCommands"`) so that its surface replaces the bundled one program-wide.
   */
  readonly register?: string | undefined
}

/**
 * Counts of what the schema holds and what the generated surface types.
 *
 * @since 0.1.0
 * @category models
 */
export interface Coverage {
  readonly commands: number
  readonly events: number
  readonly typedCommands: number
  readonly typedEvents: number
  /** Introspection enums, objects and alternates, before merging identical ones. */
  readonly types: number
  /** Named declarations after merging identical shapes. */
  readonly shapes: number
}

/**
 * The generated source and what it covers.
 *
 * @since 0.1.0
 * @category models
 */
export interface Generated {
  readonly source: string
  readonly coverage: Coverage
}

const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/
const key = (name: string): string => (identifier.test(name) ? name : JSON.stringify(name))
const code = (text: string): string => `\`${text}\``

// The generated module's schema of QAPI's integers and numbers, declared once at its top.
const integerSchema = "QmpInteger"

const featureNotes = (features: ReadonlyArray<string> | undefined): Array<string> =>
  (features ?? []).map((feature) =>
    feature === "deprecated"
      ? "@deprecated QEMU marks this `deprecated`."
      : feature === "unstable"
      ? "@experimental QEMU marks this `unstable`: it may change or go away in any release."
      : `QEMU feature ${code(feature)}.`
  )

// Blank lines separate paragraphs; leading, trailing and doubled ones are dropped.
const docComment = (indent: string, paragraphs: ReadonlyArray<string>): Array<string> => {
  const lines = paragraphs.filter((p, i) => p.length > 0 || (i > 0 && paragraphs[i - 1].length > 0))
  while (lines.length > 0 && lines[lines.length - 1].length === 0) lines.pop()
  if (lines.length === 0) return []
  if (lines.length === 1 && !lines[0].startsWith("@")) return [`${indent}/** ${lines[0]} */`]
  return [
    `${indent}/**`,
    ...lines.map((line) => (line.length > 0 ? `${indent} * ${line}` : `${indent} *`)),
    `${indent} */`
  ]
}

const describeUsage = (usage: Usage): string => {
  switch (usage._tag) {
    case "CommandArgs":
      return `the arguments of command ${code(usage.command)}`
    case "CommandReturn":
      return usage.element
        ? `each element of what command ${code(usage.command)} returns`
        : `what command ${code(usage.command)} returns`
    case "EventData":
      return `the data of event ${code(usage.event)}`
    case "Member":
      return `member ${code(usage.member)} of {@link ${usage.owner}}`
    case "Variant":
      return `the variant ${code(usage.case)} of {@link ${usage.owner}}`
    case "Alternative":
      return `an alternative of {@link ${usage.owner}}`
  }
}

const capitalize = (text: string): string => text.charAt(0).toUpperCase() + text.slice(1)

// A shape can be used in hundreds of places; the doc names the first few and counts the rest.
const usageParagraphs = (usages: ReadonlyArray<Usage>): Array<string> => {
  const [first, ...rest] = usages
  if (first === undefined) return []
  const shown = rest.slice(0, 4).map(describeUsage)
  const more = rest.length - shown.length
  const also = shown.length === 0
    ? ""
    : ` Also ${shown.join("; ")}${more > 0 ? `; and ${more} more place${more === 1 ? "" : "s"}` : ""}.`
  return [`${capitalize(describeUsage(first))}.${also}`]
}

/**
 * Generates the surface. Declarations come in dependency order (each `Schema` after the ones it
 * uses, so no `Schema.suspend` is needed except on a real cycle), roots visited in name order.
 *
 * @since 0.1.0
 * @category constructors
 */
export const generate = (schema: SchemaInfoList, options: GenerateOptions): Generated => {
  const index = makeIndex(schema)
  const shapes: Shapes = makeShapes(index)
  const version = options.version === undefined ? "a QEMU of unknown version" : `QEMU ${options.version.number}`
  const out: Array<string> = []

  const shapeOf = (type: string): number => {
    const shape = shapes.shapeOf.get(type)
    if (shape === undefined) throw new Error(`query-qmp-schema refers to an unknown type ${JSON.stringify(type)}`)
    return shape
  }
  const isEmpty = (type: string): boolean => shapes.empty !== undefined && shapeOf(type) === shapes.empty
  const infoOf = (type: string): SchemaInfo => shapes.representative.get(shapeOf(type))!
  const nameOf = (type: string): string => shapes.names.get(shapeOf(type))!

  const typeExpr = (type: string): string => {
    const info = infoOf(type)
    switch (info["meta-type"]) {
      case "builtin":
        switch (info["json-type"]) {
          case "string":
            return "string"
          // Integers outside the safe range arrive as, and may be sent as, `bigint` (see `QmpInteger`).
          case "int":
          case "number":
            return "number | bigint"
          case "boolean":
            return "boolean"
          case "null":
            return "null"
          case "object":
            return "{ readonly [key: string]: unknown }"
          case "array":
            return "ReadonlyArray<unknown>"
          default:
            return "unknown"
        }
      case "array":
        return `ReadonlyArray<${typeExpr(info["element-type"])}>`
    }
    return nameOf(type)
  }

  const emitted = new Set<number>()
  const schemaExpr = (type: string): string => {
    const info = infoOf(type)
    switch (info["meta-type"]) {
      case "builtin":
        switch (info["json-type"]) {
          case "string":
            return "Schema.String"
          // Introspection says `int` for every integer type, 8 to 64 bits: only "a number, or a
          // `bigint` outside the safe range" can be checked, not a range.
          case "int":
          case "number":
            return integerSchema
          case "boolean":
            return "Schema.Boolean"
          case "null":
            return "Schema.Null"
          case "object":
            return "Schema.Record({ key: Schema.String, value: Schema.Unknown })"
          case "array":
            return "Schema.Array(Schema.Unknown)"
          default:
            return "Schema.Unknown"
        }
      case "array":
        return `Schema.Array(${schemaExpr(info["element-type"])})`
    }
    const name = nameOf(type)
    return emitted.has(shapeOf(type)) ? name : `Schema.suspend((): Schema.Schema<${name}> => ${name})`
  }

  // Object shapes that are variants of a union keep their fields in a constant to spread them.
  const fieldConstants = new Set<number>()
  for (const [shape, usages] of shapes.usages) {
    if (usages.some((usage) => usage._tag === "Variant")) fieldConstants.add(shape)
  }
  // Shape names are PascalCase, so an underscore keeps these constants apart from every type.
  const fieldsName = (name: string): string => `${name}_fields`

  const memberLines = (info: ObjectInfo, indent: string, omit?: string): Array<string> =>
    info.members.filter((member) => member.name !== omit).flatMap((member) => [
      ...docComment(indent, featureNotes(member.features)),
      `${indent}readonly ${key(member.name)}${isOptional(member) ? "?" : ""}: ${typeExpr(member.type)}${
        isOptional(member) ? " | undefined" : ""
      }`
    ])

  const fieldLines = (info: ObjectInfo, indent: string, omit?: string): Array<string> =>
    info.members.filter((member) => member.name !== omit).map((member) =>
      `${indent}${key(member.name)}: ${
        isOptional(member) ? `Schema.optional(${schemaExpr(member.type)})` : schemaExpr(member.type)
      },`
    )

  // Spreads a variant's fields from its constant, or writes them out when a cycle means the
  // constant is not defined yet.
  const branchFields = (type: string, indent: string): Array<string> => {
    const info = infoOf(type) as ObjectInfo
    if (info.members.length === 0) return []
    return emitted.has(shapeOf(type)) && fieldConstants.has(shapeOf(type))
      ? [`${indent}...${fieldsName(nameOf(type))},`]
      : fieldLines(info, indent)
  }

  const header = (shape: number, extra: ReadonlyArray<string>): Array<string> =>
    docComment("", [
      ...usageParagraphs(shapes.usages.get(shape) ?? []),
      ...extra,
      `From ${version}.`,
      ...featureNotes(shapes.representative.get(shape)!.features),
      "",
      "@since 0.1.0",
      "@category models"
    ])

  // The schema constant shares its name with the type, whose doc says where the shape comes from.
  const schemaHeader = (name: string): Array<string> =>
    docComment("", [`The \`Schema\` of {@link ${name}}.`, "", "@since 0.1.0", "@category schemas"])

  const emitEnum = (shape: number, name: string, info: SchemaInfo & { "meta-type": "enum" }): void => {
    const notes = (info.members ?? []).filter((member) => member.features !== undefined && member.features.length > 0)
      .map((member) => `Value ${code(member.name)}: ${(member.features ?? []).map(code).join(", ")}.`)
    const literals = enumValues(info).map((value) => JSON.stringify(value))
    out.push(...header(shape, notes))
    out.push(`export type ${name} = ${literals.length === 0 ? "never" : literals.join(" | ")}`)
    out.push("")
    out.push(...schemaHeader(name))
    out.push(
      `export const ${name}: Schema.Schema<${name}> = ${
        literals.length === 0 ? "Schema.Never" : `Schema.Literal(${literals.join(", ")})`
      }`
    )
    out.push("")
  }

  const emitAlternate = (shape: number, name: string, info: SchemaInfo & { "meta-type": "alternate" }): void => {
    out.push(...header(shape, []))
    out.push(`export type ${name} = ${info.members.map((member) => typeExpr(member.type)).join(" | ")}`)
    out.push("")
    out.push(...schemaHeader(name))
    out.push(
      `export const ${name}: Schema.Schema<${name}> = Schema.Union(${
        info.members.map((member) => schemaExpr(member.type)).join(", ")
      })`
    )
    out.push("")
  }

  const emitStruct = (shape: number, name: string, info: ObjectInfo): void => {
    out.push(...header(shape, []))
    out.push(`export interface ${name} {`, ...memberLines(info, "  "), "}")
    out.push("")
    if (fieldConstants.has(shape)) {
      out.push(`const ${fieldsName(name)} = {`, ...fieldLines(info, "  "), "}")
      out.push("")
      out.push(...schemaHeader(name))
      out.push(`export const ${name}: Schema.Schema<${name}> = Schema.Struct(${fieldsName(name)})`)
    } else {
      out.push(...schemaHeader(name))
      out.push(`export const ${name}: Schema.Schema<${name}> = Schema.Struct({`, ...fieldLines(info, "  "), "})")
    }
    out.push("")
  }

  // The tag values of a flat union, grouped by the variant type they select (`undefined`: no
  // members beyond the common ones). Tag values without a variant are still valid.
  const unionGroups = (info: ObjectInfo, tag: string) => {
    const tagMember = info.members.find((member) => member.name === tag)
    const tagEnum = tagMember === undefined ? undefined : infoOf(tagMember.type)
    const values = tagEnum?.["meta-type"] === "enum" ? enumValues(tagEnum) : []
    const groups = new Map<string | undefined, Array<string>>()
    for (const variant of info.variants ?? []) {
      const branch = isEmpty(variant.type) ? undefined : variant.type
      const existing = [...groups.keys()].find((k) =>
        k !== undefined && branch !== undefined && shapeOf(k) === shapeOf(branch)
      )
      const group = groups.get(existing ?? branch) ?? []
      group.push(variant.case)
      groups.set(existing ?? branch, group)
    }
    const covered = new Set((info.variants ?? []).map((variant) => variant.case))
    const bare = values.filter((value) => !covered.has(value))
    if (bare.length > 0) groups.set(undefined, [...(groups.get(undefined) ?? []), ...bare])
    return [...groups].map(([branch, cases]) => ({ branch, literals: cases.map((value) => JSON.stringify(value)) }))
  }

  const isUnion = (info: SchemaInfo): info is ObjectInfo & { readonly tag: string } =>
    info["meta-type"] === "object" && info.tag !== undefined && info.variants !== undefined

  // The alternatives of a union as the field lines of one `Schema.Struct` each. A variant that is
  // itself a union (`MigrationAddress`'s `socket` is a `SocketAddress`, from QEMU 8.2) contributes
  // one alternative per alternative of its own, so the schema stays a union of plain structs.
  const unionAlternatives = (
    info: ObjectInfo & { readonly tag: string },
    own: ReadonlyArray<string>,
    indent: string
  ): Array<Array<string>> =>
    unionGroups(info, info.tag).flatMap(({ branch, literals }) => {
      const tagLine = `${indent}${key(info.tag)}: Schema.Literal(${literals.join(", ")}),`
      const inner = branch === undefined ? [[]] : variantAlternatives(branch, indent)
      return inner.map((lines) => [...own, tagLine, ...lines])
    })

  const variantAlternatives = (type: string, indent: string): Array<Array<string>> => {
    const info = infoOf(type)
    if (!isUnion(info)) return [branchFields(type, indent)]
    const own = emitted.has(shapeOf(type))
      ? [`${indent}...${fieldsName(`${nameOf(type)}Base`)},`]
      : fieldLines(info, indent)
    return unionAlternatives(info, own, indent)
  }

  // A flat union: the common members, then one alternative per group of tag values that share a
  // variant type.
  const emitUnion = (shape: number, name: string, info: ObjectInfo & { readonly tag: string }): void => {
    const tag = info.tag
    const base = `${name}Base`
    out.push(
      ...docComment("", [
        `The members common to every variant of {@link ${name}}.`,
        "",
        "@since 0.1.0",
        "@category models"
      ])
    )
    out.push(`export interface ${base} {`, ...memberLines(info, "  "), "}")
    out.push("")
    out.push(`const ${fieldsName(base)} = {`, ...fieldLines(info, "  "), "}")
    out.push("")
    out.push(...header(shape, [`Told apart by ${code(tag)}.`]))
    out.push(`export type ${name} =`)
    for (const { branch, literals } of unionGroups(info, tag)) {
      const parts = [base, `{ readonly ${key(tag)}: ${literals.join(" | ")} }`]
      if (branch !== undefined) parts.push(nameOf(branch))
      out.push(`  | (${parts.join(" & ")})`)
    }
    out.push("")
    out.push(...schemaHeader(name))
    out.push(`export const ${name}: Schema.Schema<${name}> = Schema.Union(`)
    const alternatives = unionAlternatives(info, [`    ...${fieldsName(base)},`], "    ")
    alternatives.forEach((lines, i) => {
      out.push("  Schema.Struct({", ...lines, `  })${i === alternatives.length - 1 ? "" : ","}`)
    })
    out.push(")")
    out.push("")
  }

  // Named shapes a shape's declaration refers to; variants first, since their field constants
  // must exist before a union spreads them.
  const dependencies = (info: SchemaInfo): Array<number> => {
    const refs: Array<string> = info["meta-type"] === "object"
      ? [...(info.variants ?? []).map((v) => v.type), ...info.members.map((m) => m.type)]
      : info["meta-type"] === "alternate"
      ? info.members.map((m) => m.type)
      : []
    const result: Array<number> = []
    for (let ref of refs) {
      let target = infoOf(ref)
      while (target["meta-type"] === "array") {
        ref = target["element-type"]
        target = infoOf(ref)
      }
      if (shapes.names.has(shapeOf(ref))) result.push(shapeOf(ref))
    }
    return result
  }

  const visiting = new Set<number>()
  const visit = (shape: number): void => {
    if (emitted.has(shape) || visiting.has(shape)) return
    visiting.add(shape)
    const info = shapes.representative.get(shape)!
    for (const dependency of dependencies(info)) visit(dependency)
    const name = shapes.names.get(shape)!
    if (info["meta-type"] === "enum") emitEnum(shape, name, info)
    else if (info["meta-type"] === "alternate") emitAlternate(shape, name, info)
    else if (info["meta-type"] === "object") {
      if (isUnion(info)) emitUnion(shape, name, info)
      else emitStruct(shape, name, info)
    }
    visiting.delete(shape)
    emitted.add(shape)
  }

  const declared = [...shapes.names].sort(([, a], [, b]) => (a < b ? -1 : a > b ? 1 : 0))
  for (const [shape] of declared) visit(shape)
  // A command's or event's own name for a shape another use named first (see `Shapes.aliases`).
  const aliasOf = new Map<string, string>()
  for (const alias of shapes.aliases) {
    const { usage } = alias
    if (usage._tag === "CommandReturn" && usage.element) continue
    const owner = usage._tag === "EventData" ?
      usage.event :
      usage._tag === "CommandArgs" || usage._tag === "CommandReturn"
      ? usage.command
      : ""
    aliasOf.set(`${usage._tag}:${owner}`, alias.name)
  }
  for (const alias of shapes.aliases) {
    const target = shapes.names.get(alias.shape)!
    out.push(...docComment("", [
      `${capitalize(describeUsage(alias.usage))}: the same shape as {@link ${target}}.`,
      "",
      "@since 0.1.0",
      "@category models"
    ]))
    out.push(`export type ${alias.name} = ${target}`)
    out.push("")
    out.push(...schemaHeader(alias.name))
    out.push(`export const ${alias.name}: Schema.Schema<${alias.name}> = ${target}`)
    out.push("")
  }
  const declarations = out.splice(0, out.length)
  const named = (usage: string, owner: string, type: string, orElse: (type: string) => string): string =>
    aliasOf.get(`${usage}:${owner}`) ?? orElse(type)

  const argsType = (type: string, owner = ""): string =>
    isEmpty(type) ? "undefined" : named("CommandArgs", owner, type, typeExpr)
  const argsSchema = (type: string, owner = ""): string =>
    isEmpty(type) ? "Schema.Undefined" : named("CommandArgs", owner, type, schemaExpr)
  const dataType = (type: string, owner: string): string =>
    isEmpty(type) ? "undefined" : named("EventData", owner, type, typeExpr)
  const dataSchema = (type: string, owner: string): string =>
    isEmpty(type) ? "Schema.Undefined" : named("EventData", owner, type, schemaExpr)
  // Free-form commands (see `takesExtraMembers`) take any member besides their listed ones.
  const extra = (command: CommandInfo): boolean => !isEmpty(command["arg-type"]) && takesExtraMembers(index, command)
  const commandArgsType = (command: CommandInfo): string =>
    extra(command)
      ? `${argsType(command["arg-type"], command.name)} & { readonly [property: string]: unknown }`
      : argsType(command["arg-type"], command.name)
  const commandArgsSchema = (command: CommandInfo): string =>
    extra(command)
      ? `Schema.extend(${
        argsSchema(command["arg-type"], command.name)
      }, Schema.Record({ key: Schema.String, value: Schema.Unknown }))`
      : argsSchema(command["arg-type"], command.name)

  out.push(...docComment("", [
    `The QMP surface of ${version}${
      options.version === undefined ? "" : ` (${options.version.package})`
    }: every command's arguments and`,
    "return type, every event's data, and a `Schema` for each to decode replies at runtime.",
    "",
    "Generated by `effect-qemu codegen` from the binary's own `query-qmp-schema`; do not edit.",
    "Type names are derived from where a shape is first used (introspection masks them), and",
    "structurally identical shapes share one name.",
    "",
    "@since 0.1.0"
  ]))
  out.push(`import { Schema } from "effect"`)
  out.push("")
  out.push(...docComment("", [
    "QAPI's integers (every width, `size` included) and numbers: a `number`, or a `bigint` for an",
    "integer outside `Number`'s safe range, which the client reads and writes exactly."
  ]))
  out.push(`const ${integerSchema} = Schema.Union(Schema.Number, Schema.BigIntFromSelf)`)
  out.push("")
  out.push(...declarations)

  out.push(...docComment("", [
    `Command name to its arguments and return type, for ${version}.`,
    "",
    "@since 0.1.0",
    "@category models"
  ]))
  out.push("export interface Commands {")
  for (const command of shapes.commands) {
    out.push(...docComment("  ", [
      `Command ${code(command.name)}${command["allow-oob"] === true ? ", which may run out of band" : ""}.`,
      ...(extra(command) ? ["It takes members beyond those listed (QEMU parses them itself)."] : []),
      ...featureNotes(command.features)
    ]))
    out.push(
      `  readonly ${key(command.name)}: { readonly args: ${commandArgsType(command)}; readonly return: ${
        named("CommandReturn", command.name, command["ret-type"], typeExpr)
      } }`
    )
  }
  out.push("}")
  out.push("")
  out.push(...docComment("", [
    `Event name to the type of its \`data\` member (\`undefined\` when QEMU sends none), for ${version}.`,
    "",
    "@since 0.1.0",
    "@category models"
  ]))
  out.push("export interface Events {")
  for (const event of shapes.events) {
    out.push(...docComment("  ", [`Event ${code(event.name)}.`, ...featureNotes(event.features)]))
    out.push(`  readonly ${key(event.name)}: ${dataType(event["arg-type"], event.name)}`)
  }
  out.push("}")
  out.push("")
  out.push(...docComment("", [
    "The runtime counterpart of {@link Commands} and {@link Events}.",
    "",
    "@since 0.1.0",
    "@category models"
  ]))
  out.push("export interface QmpSchemas {")
  out.push("  readonly commands: {")
  out.push("    readonly [K in keyof Commands]: {")
  out.push("      readonly args: Schema.Schema<Commands[K][\"args\"]>")
  out.push("      readonly return: Schema.Schema<Commands[K][\"return\"]>")
  out.push("    }")
  out.push("  }")
  out.push("  readonly events: { readonly [K in keyof Events]: Schema.Schema<Events[K]> }")
  out.push("}")
  out.push("")
  out.push(...docComment("", [
    "A `Schema` for each command's arguments and return value and each event's data, to decode",
    "what QEMU sends, e.g. `Schema.decodeUnknown(QmpSchemas.commands[\"query-status\"].return)`.",
    "",
    "@since 0.1.0",
    "@category schemas"
  ]))
  out.push("export const QmpSchemas: QmpSchemas = {")
  out.push("  commands: {")
  for (const command of shapes.commands) {
    out.push(
      `    ${key(command.name)}: { args: ${commandArgsSchema(command)}, return: ${
        named("CommandReturn", command.name, command["ret-type"], schemaExpr)
      } },`
    )
  }
  out.push("  },")
  out.push("  events: {")
  for (const event of shapes.events) {
    out.push(`    ${key(event.name)}: ${dataSchema(event["arg-type"], event.name)},`)
  }
  out.push("  }")
  out.push("}")

  if (options.register !== undefined) {
    out.push("")
    out.push(`declare module ${JSON.stringify(options.register)} {`)
    out.push(
      ...docComment("  ", [`Makes this module's surface (${version}) the one \`execute\` and \`waitEvent\` use.`])
    )
    out.push("  interface QmpSurfaceRegistry {")
    out.push("    readonly surface: { readonly commands: Commands; readonly events: Events }")
    out.push("  }")
    out.push("}")
  }
  out.push("")

  const types =
    [...index.types.values()].filter((info) =>
      info["meta-type"] === "enum" || info["meta-type"] === "object" || info["meta-type"] === "alternate"
    ).length
  return {
    source: out.join("\n"),
    coverage: {
      commands: shapes.commands.length,
      events: shapes.events.length,
      typedCommands: shapes.commands.length,
      typedEvents: shapes.events.length,
      types,
      shapes: shapes.names.size
    }
  }
}
