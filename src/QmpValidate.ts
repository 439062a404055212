/**
 * Checks a command's arguments against a QEMU's live schema (`query-qmp-schema`) before they are
 * sent, so that a mistake is reported with the member that is wrong instead of QEMU's
 * `GenericError` text. Useful for untyped calls and for QEMUs other than the one the types were
 * generated from.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import { QmpArgumentError } from "./QmpError.js"
import type { ObjectInfo, ObjectMember, SchemaIndex, SchemaInfoList } from "./QmpIntrospection.js"
import { enumValues, isOptional, makeIndex, takesExtraMembers } from "./QmpIntrospection.js"

export {
  /**
   * Re-exported from `QmpError`, where every QMP error lives.
   *
   * @since 0.1.0
   * @category errors
   */
  QmpArgumentError
} from "./QmpError.js"

type Problem = Omit<ConstructorParameters<typeof QmpArgumentError>[0], "command">

const indexes = new WeakMap<SchemaInfoList, SchemaIndex>()
const indexOf = (schema: SchemaInfoList | SchemaIndex): SchemaIndex => {
  if (!Array.isArray(schema)) return schema as SchemaIndex
  const list = schema as SchemaInfoList
  let index = indexes.get(list)
  if (index === undefined) {
    index = makeIndex(list)
    indexes.set(list, index)
  }
  return index
}

const jsonType = (value: unknown): string => value === null ? "null" : Array.isArray(value) ? "array" : typeof value

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const join = (path: string, member: string): string => (path.length === 0 ? member : `${path}.${member}`)

// The members an object value may have: the common ones, and those of the variant its tag
// selects, through as many levels of unions as the schema nests (a variant can be a union).
const membersOf = (index: SchemaIndex, info: ObjectInfo, value: Record<string, unknown>): Array<ObjectMember> => {
  const members = [...info.members]
  if (info.tag !== undefined && info.variants !== undefined) {
    const tagValue = value[info.tag]
    const variant = info.variants.find((v) => v.case === tagValue)
    const branch = variant === undefined ? undefined : index.types.get(variant.type)
    if (branch !== undefined && branch["meta-type"] === "object" && branch !== info) {
      members.push(...membersOf(index, branch, value))
    }
  }
  return members
}

const check = (
  index: SchemaIndex,
  type: string,
  value: unknown,
  path: string,
  extraMembers = false
): Problem | undefined => {
  const info = index.types.get(type)
  if (info === undefined) return undefined
  const wrongType = (expected: string): Problem => ({
    reason: "WrongType",
    path,
    detail: `expected ${expected}, got ${jsonType(value)}`
  })
  switch (info["meta-type"]) {
    case "builtin":
      switch (info["json-type"]) {
        case "string":
          return typeof value === "string" ? undefined : wrongType("a string")
        // A bigint is sent with all its digits, so it is as good as an integer number.
        case "int":
          return Number.isInteger(value) || typeof value === "bigint" ? undefined : wrongType("an integer")
        case "number":
          return typeof value === "number" || typeof value === "bigint" ? undefined : wrongType("a number")
        case "boolean":
          return typeof value === "boolean" ? undefined : wrongType("a boolean")
        case "null":
          return value === null ? undefined : wrongType("null")
        case "object":
          return isRecord(value) ? undefined : wrongType("an object")
        case "array":
          return Array.isArray(value) ? undefined : wrongType("an array")
        default:
          return undefined
      }
    case "enum":
      if (typeof value !== "string") return wrongType("a string")
      return enumValues(info).includes(value) ? undefined : {
        reason: "BadEnumValue",
        path,
        detail: `${JSON.stringify(value)} is not one of ${enumValues(info).map((v) => JSON.stringify(v)).join(", ")}`
      }
    case "array": {
      if (!Array.isArray(value)) return wrongType("an array")
      for (let i = 0; i < value.length; i++) {
        const problem = check(index, info["element-type"], value[i], `${path}[${i}]`)
        if (problem !== undefined) return problem
      }
      return undefined
    }
    case "alternate": {
      // QEMU picks an alternative by JSON type; the closest miss is the most useful to report.
      const problems: Array<Problem> = []
      for (const alternative of info.members) {
        const problem = check(index, alternative.type, value, path)
        if (problem === undefined) return undefined
        problems.push(problem)
      }
      return problems.find((problem) => problem.reason !== "WrongType" || problem.path !== path) ??
        wrongType(
          info.members.map((m) => index.types.get(m.type)?.["meta-type"] === "builtin" ? m.type : "an object").join(
            " or "
          )
        )
    }
    case "object": {
      if (!isRecord(value)) return wrongType("an object")
      const members = membersOf(index, info, value)
      for (const member of members) {
        const present = value[member.name] !== undefined
        if (!present && !isOptional(member)) {
          return { reason: "MissingMember", path: join(path, member.name), detail: "required member is missing" }
        }
        if (present) {
          const problem = check(index, member.type, value[member.name], join(path, member.name))
          if (problem !== undefined) return problem
        }
      }
      const known = new Set(members.map((member) => member.name))
      // `undefined` members are dropped by JSON.stringify, so they are as good as absent.
      const unknown = Object.keys(value).filter((key) => !known.has(key) && value[key] !== undefined).sort()
      if (unknown.length > 0 && !extraMembers) {
        return {
          reason: "UnknownMember",
          path: join(path, unknown[0]),
          detail: `no member ${JSON.stringify(unknown[0])} here; known: ${[...known].join(", ") || "(none)"}`
        }
      }
      return undefined
    }
    default:
      return undefined
  }
}

/**
 * Checks `args` for `command` against a schema (the `query-qmp-schema` reply, or its
 * {@link SchemaIndex}) and names the first member that is unknown, missing, of the wrong JSON type
 * or not a value of its enum. Leaving `args` out counts as `{}`.
 *
 * @example
 * ```ts
 * import { Effect, Either } from "effect"
 * import { Qmp, QmpIntrospection, QmpValidate } from "effect-qemu"
 *
 * const check = Effect.gen(function*() {
 *   const qmp = yield* Qmp.Qmp
 *   const schema = QmpIntrospection.makeIndex(yield* qmp.execute("query-qmp-schema"))
 *   const result = QmpValidate.validateArgs(schema, "blockdev-del", { nodename: "disk0" })
 *   // Left(QmpArgumentError { reason: "UnknownMember", path: "nodename", ... })
 *   return Either.isLeft(result) ? result.left.message : "valid"
 * })
 * ```
 *
 * @since 0.1.0
 * @category combinators
 */
export const validateArgs = (
  schema: SchemaInfoList | SchemaIndex,
  command: string,
  args: unknown
): Either.Either<void, QmpArgumentError> => {
  const index = indexOf(schema)
  const info = index.commands.get(command)
  if (info === undefined) {
    return Either.left(
      new QmpArgumentError({ command, reason: "UnknownCommand", path: "", detail: "this QEMU has no such command" })
    )
  }
  const free = takesExtraMembers(index, info)
  const problem = check(index, info["arg-type"], args === undefined ? {} : args, "", free)
  return problem === undefined ? Either.void : Either.left(new QmpArgumentError({ command, ...problem }))
}
