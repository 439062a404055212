/**
 * The shape of QEMU's `query-qmp-schema` reply (`SchemaInfo` in QEMU's `qapi/introspect.json`):
 * the wire ABI of one QEMU binary, as a list of entities that refer to each other by name.
 *
 * Type names are masked by QEMU (they are numbers such as `"262"`); only commands, events and
 * builtins keep their real names, and arrays are named after their element as `"[262]"`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * The optional feature list carried by entities and members: `deprecated`, `unstable`, or a
 * binary-specific one such as `allow-write-only-overlay`.
 *
 * @since 0.1.0
 * @category models
 */
export const Features = Schema.optional(Schema.Array(Schema.String))

/**
 * A JSON type the wire can carry for a builtin: `value` means any JSON value (the `any` builtin).
 *
 * @since 0.1.0
 * @category models
 */
export const JsonType = Schema.Literal("string", "number", "int", "boolean", "null", "object", "array", "value")

/**
 * @since 0.1.0
 * @category models
 */
export type JsonType = typeof JsonType.Type

// A JSON type this library does not know yet (a QEMU newer than it) is read as any JSON value.
const LooseJsonType = Schema.Union(
  JsonType,
  Schema.transform(Schema.String, Schema.Literal("value"), { decode: () => "value" as const, encode: (s) => s })
)

/**
 * A builtin scalar: `str`, `int`, `number`, `bool`, `null` or `any`. Introspection reports every
 * integer type (`int8` to `uint64`, `size`) as `int`.
 *
 * @since 0.1.0
 * @category models
 */
export class BuiltinInfo extends Schema.Class<BuiltinInfo>("BuiltinInfo")({
  "meta-type": Schema.Literal("builtin"),
  name: Schema.String,
  "json-type": LooseJsonType,
  features: Features
}) {}

/**
 * One value of an enum, with its own features (a value can be deprecated on its own).
 *
 * @since 0.1.0
 * @category models
 */
export class EnumMember extends Schema.Class<EnumMember>("EnumMember")({
  name: Schema.String,
  features: Features
}) {}

/**
 * An enumeration of strings. Older QEMUs only send `values`; newer ones also send `members`
 * (and `values` is deprecated, so a future QEMU may send `members` alone): read the values with
 * {@link enumValues}.
 *
 * @since 0.1.0
 * @category models
 */
export class EnumInfo extends Schema.Class<EnumInfo>("EnumInfo")({
  "meta-type": Schema.Literal("enum"),
  name: Schema.String,
  values: Schema.optional(Schema.Array(Schema.String)),
  members: Schema.optional(Schema.Array(EnumMember)),
  features: Features
}) {}

/**
 * A JSON array whose elements are all of `element-type`.
 *
 * @since 0.1.0
 * @category models
 */
export class ArrayInfo extends Schema.Class<ArrayInfo>("ArrayInfo")({
  "meta-type": Schema.Literal("array"),
  name: Schema.String,
  "element-type": Schema.String,
  features: Features
}) {}

/**
 * A member of an object. The presence of `default` (always `null` today) marks it optional.
 *
 * @since 0.1.0
 * @category models
 */
export class ObjectMember extends Schema.Class<ObjectMember>("ObjectMember")({
  name: Schema.String,
  type: Schema.String,
  default: Schema.optional(Schema.Unknown),
  features: Features
}) {}

/**
 * One branch of a flat union: when the tag member equals `case`, the members of `type` apply too.
 *
 * @since 0.1.0
 * @category models
 */
export class ObjectVariant extends Schema.Class<ObjectVariant>("ObjectVariant")({
  case: Schema.String,
  type: Schema.String
}) {}

/**
 * A JSON object; with `tag` and `variants` it is a flat union discriminated by the `tag` member.
 *
 * @since 0.1.0
 * @category models
 */
export class ObjectInfo extends Schema.Class<ObjectInfo>("ObjectInfo")({
  "meta-type": Schema.Literal("object"),
  name: Schema.String,
  members: Schema.Array(ObjectMember),
  tag: Schema.optional(Schema.String),
  variants: Schema.optional(Schema.Array(ObjectVariant)),
  features: Features
}) {}

/**
 * One of several types told apart by their JSON type.
 *
 * @since 0.1.0
 * @category models
 */
export class AlternateInfo extends Schema.Class<AlternateInfo>("AlternateInfo")({
  "meta-type": Schema.Literal("alternate"),
  name: Schema.String,
  members: Schema.Array(Schema.Struct({ type: Schema.String })),
  features: Features
}) {}

/**
 * A command: its arguments object type, its return type, and whether it may run out of band.
 *
 * @since 0.1.0
 * @category models
 */
export class CommandInfo extends Schema.Class<CommandInfo>("CommandInfo")({
  "meta-type": Schema.Literal("command"),
  name: Schema.String,
  "arg-type": Schema.String,
  "ret-type": Schema.String,
  "allow-oob": Schema.optional(Schema.Boolean),
  features: Features
}) {}

/**
 * An event and the object type of its `data` member.
 *
 * @since 0.1.0
 * @category models
 */
export class EventInfo extends Schema.Class<EventInfo>("EventInfo")({
  "meta-type": Schema.Literal("event"),
  name: Schema.String,
  "arg-type": Schema.String,
  features: Features
}) {}

const knownMetaTypes: ReadonlyArray<string> = [
  "builtin",
  "enum",
  "array",
  "object",
  "alternate",
  "command",
  "event"
]

// An entity of a meta-type this library does not know yet (a QEMU newer than it) is read as a
// type that takes any JSON value, so that what refers to it stays usable.
const UnknownMetaType = Schema.transform(
  Schema.Struct({
    "meta-type": Schema.String.pipe(Schema.filter((metaType) => !knownMetaTypes.includes(metaType))),
    name: Schema.String
  }),
  Schema.typeSchema(BuiltinInfo),
  {
    strict: false,
    decode: ({ name }) => new BuiltinInfo({ "meta-type": "builtin", name, "json-type": "value" }),
    encode: (info) => ({ "meta-type": info["meta-type"], name: info.name })
  }
)

/**
 * Any entity of the schema, told apart by `meta-type`. An entity of a meta-type unknown to this
 * library decodes as a builtin that takes any JSON value.
 *
 * @since 0.1.0
 * @category models
 */
export const SchemaInfo = Schema.Union(
  BuiltinInfo,
  EnumInfo,
  ArrayInfo,
  ObjectInfo,
  AlternateInfo,
  CommandInfo,
  EventInfo,
  UnknownMetaType
)

/**
 * @since 0.1.0
 * @category models
 */
export type SchemaInfo = typeof SchemaInfo.Type

/**
 * The whole `query-qmp-schema` reply.
 *
 * @since 0.1.0
 * @category models
 */
export const SchemaInfoList = Schema.Array(SchemaInfo)

/**
 * The values of an enum, from `members` when QEMU sends them, else from `values`.
 *
 * @since 0.1.0
 * @category models
 */
export const enumValues = (info: EnumInfo): ReadonlyArray<string> =>
  info.members?.map((member) => member.name) ?? info.values ?? []

/**
 * @since 0.1.0
 * @category models
 */
export type SchemaInfoList = typeof SchemaInfoList.Type

/**
 * The `query-version` reply (and the `version` member of the QMP greeting).
 *
 * @since 0.1.0
 * @category models
 */
export class QemuVersion extends Schema.Class<QemuVersion>("QemuVersion")({
  qemu: Schema.Struct({ major: Schema.Number, minor: Schema.Number, micro: Schema.Number }),
  package: Schema.String
}) {
  /**
   * `major.minor.micro`, as QEMU prints it.
   *
   * @since 0.1.0
   */
  get number(): string {
    return `${this.qemu.major}.${this.qemu.minor}.${this.qemu.micro}`
  }
}

/**
 * Looks up entities by name, the way every consumer of the schema needs to.
 *
 * @since 0.1.0
 * @category models
 */
export interface SchemaIndex {
  readonly types: ReadonlyMap<string, SchemaInfo>
  readonly commands: ReadonlyMap<string, CommandInfo>
  readonly events: ReadonlyMap<string, EventInfo>
}

/**
 * Indexes a schema. Commands and events live in their own namespaces, apart from types.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeIndex = (schema: SchemaInfoList): SchemaIndex => {
  const types = new Map<string, SchemaInfo>()
  const commands = new Map<string, CommandInfo>()
  const events = new Map<string, EventInfo>()
  for (const info of schema) {
    if (info["meta-type"] === "command") commands.set(info.name, info)
    else if (info["meta-type"] === "event") events.set(info.name, info)
    else types.set(info.name, info)
  }
  return { types, commands, events }
}

/**
 * Whether an object member may be left out.
 *
 * @since 0.1.0
 * @category models
 */
export const isOptional = (member: ObjectMember): boolean => member.default !== undefined

/**
 * Whether a command takes members beyond those its schema lists. QAPI's `gen: false` commands
 * parse their own arguments, and introspection does not say which they are: `device_add` passes
 * every other member to the device as a property (`"socket-id"`, `"drive"`...), and so did
 * `object-add` before its arguments became a union (QEMU 6.0), and `netdev_add` before that.
 *
 * @since 0.1.0
 * @category models
 */
export const takesExtraMembers = (index: SchemaIndex, command: CommandInfo): boolean => {
  if (command.name === "device_add") return true
  if (command.name !== "object-add" && command.name !== "netdev_add") return false
  const args = index.types.get(command["arg-type"])
  return args?.["meta-type"] === "object" && args.tag === undefined
}
