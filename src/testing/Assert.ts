/**
 * Path assertions on QMP replies and events, as iotests' `assert_qmp`, `assert_qmp_absent` and
 * `dictpath`: `"return[0]/status"` walks into `reply.return[0].status`. A failure says where it
 * looked and shows what it found beside what was expected, as a line diff for objects.
 *
 * Each check comes twice: as an Effect that fails with `QmpAssertionError`, and as a plain
 * function that throws it (for `vitest` tests outside Effect).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Machine } from "effect-qemu"
 * import { Assert } from "effect-qemu/testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults"] })
 *   const reply = yield* vm.raw("query-status")
 *   yield* Assert.qmp(reply, "return/status", "running") // fails with QmpAssertionError
 *   Assert.assertQmp(reply, "return/running", true) // throws on a mismatch
 * }))
 * ```
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { lineDiff } from "../internal/lineDiff.js"
import * as LogJson from "../internal/logJson.js"

/**
 * A failed assertion: the path, what was expected, what was found (if anything), and why.
 *
 * @since 0.2.0
 * @category errors
 */
export class QmpAssertionError extends Data.TaggedError("QmpAssertionError")<{
  readonly path: string
  /** `Mismatch`: a different value; `MissingPath`: nothing there; `Present`: a value where none was expected. */
  readonly reason: "Mismatch" | "MissingPath" | "Present"
  readonly expected: unknown
  readonly actual: unknown
  /** Where the walk stopped and why, for `MissingPath`; a line diff of the values, for `Mismatch`. */
  readonly detail: string
}> {
  get message(): string {
    switch (this.reason) {
      case "MissingPath":
        return `at ${this.path}: ${this.detail}`
      case "Present":
        return `at ${this.path}: expected nothing, found ${LogJson.format(this.actual)}`
      case "Mismatch":
        return `at ${this.path}: expected ${LogJson.format(this.expected)}, found ${LogJson.format(this.actual)}` +
          (this.detail === "" ? "" : `\n${this.detail}`)
    }
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Splits `a/b[0][1]/c` into `["a", "b", 0, 1, "c"]`. */
const steps = (path: string): Array<string | number> =>
  path.split("/").filter((part) => part.length > 0).flatMap((part) => {
    const [name, ...indexes] = part.split("[")
    return [
      ...(name.length > 0 ? [name] : []),
      ...indexes.map((index) => Number(index.replace(/\]$/, "")))
    ]
  })

/**
 * The value at `path` (iotests' `dictpath`), or a sentence saying where the walk stopped.
 *
 * @since 0.2.0
 * @category getters
 */
export const dictpath = (value: unknown, path: string): Either.Either<unknown, string> => {
  let current = value
  let walked = ""
  for (const step of steps(path)) {
    const here = walked === "" ? "the top" : walked
    if (typeof step === "number") {
      if (!Array.isArray(current)) return Either.left(`${here} is not a list, cannot take [${step}]`)
      if (!Number.isInteger(step) || step < 0 || step >= current.length) {
        return Either.left(`${here} has ${current.length} items, no [${step}]`)
      }
      current = current[step]
      walked += `[${step}]`
    } else {
      if (!isRecord(current)) return Either.left(`${here} is not an object, cannot take "${step}"`)
      if (!(step in current)) {
        return Either.left(`${here} has no "${step}" (it has: ${Object.keys(current).join(", ")})`)
      }
      current = current[step]
      walked += walked === "" ? step : `/${step}`
    }
  }
  return Either.right(current)
}

/**
 * Deep equality as Python compares decoded JSON: object keys in any order, an integer equal to
 * the same integer as a `bigint`.
 *
 * @since 0.2.0
 * @category predicates
 */
export const equals = (a: unknown, b: unknown): boolean => {
  if ((typeof a === "bigint" || typeof a === "number") && (typeof b === "bigint" || typeof b === "number")) {
    if (typeof a === typeof b) return a === b
    const whole = (n: number | bigint) => typeof n === "bigint" ? n : Number.isInteger(n) ? BigInt(n) : undefined
    return whole(a) !== undefined && whole(a) === whole(b)
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((item, i) => equals(item, b[i]))
  }
  if (isRecord(a) && isRecord(b)) {
    const keys = Object.keys(a).filter((key) => a[key] !== undefined)
    return keys.length === Object.keys(b).filter((key) => b[key] !== undefined).length &&
      keys.every((key) => key in b && equals(a[key], b[key]))
  }
  return a === b
}

const sortedForDiff = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(sortedForDiff)
  if (!isRecord(value)) return value
  return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortedForDiff(value[key])]))
}

const diffOf = (expected: unknown, actual: unknown): string =>
  typeof expected === "object" && expected !== null && typeof actual === "object" && actual !== null
    ? lineDiff(LogJson.format(sortedForDiff(expected), 2), LogJson.format(sortedForDiff(actual), 2))
    : ""

/**
 * Checks that the value at `path` equals `expected` (iotests' `assert_qmp`).
 *
 * @since 0.2.0
 * @category assertions
 */
export const qmp = (value: unknown, path: string, expected: unknown): Effect.Effect<void, QmpAssertionError> =>
  Either.match(dictpath(value, path), {
    onLeft: (detail) =>
      Effect.fail(new QmpAssertionError({ path, reason: "MissingPath", expected, actual: value, detail })),
    onRight: (actual) =>
      equals(actual, expected)
        ? Effect.void
        : Effect.fail(
          new QmpAssertionError({ path, reason: "Mismatch", expected, actual, detail: diffOf(expected, actual) })
        )
  })

/**
 * Checks that there is nothing at `path` (iotests' `assert_qmp_absent`).
 *
 * @since 0.2.0
 * @category assertions
 */
export const qmpAbsent = (value: unknown, path: string): Effect.Effect<void, QmpAssertionError> =>
  Either.match(dictpath(value, path), {
    onLeft: () => Effect.void,
    onRight: (actual) =>
      Effect.fail(new QmpAssertionError({ path, reason: "Present", expected: undefined, actual, detail: "" }))
  })

/**
 * The value at `path`, or a `QmpAssertionError` saying where the walk stopped.
 *
 * @since 0.2.0
 * @category getters
 */
export const path = (value: unknown, at: string): Effect.Effect<unknown, QmpAssertionError> =>
  Either.match(dictpath(value, at), {
    onLeft: (detail) =>
      Effect.fail(
        new QmpAssertionError({ path: at, reason: "MissingPath", expected: undefined, actual: value, detail })
      ),
    onRight: Effect.succeed
  })

const orThrow = (effect: Effect.Effect<void, QmpAssertionError>): void =>
  Either.match(Effect.runSync(Effect.either(effect)), {
    onLeft: (error) => {
      throw error
    },
    onRight: () => undefined
  })

/**
 * `qmp` for tests outside Effect: throws `QmpAssertionError` (an `Error`) on a mismatch.
 *
 * @since 0.2.0
 * @category assertions
 */
export const assertQmp = (value: unknown, path: string, expected: unknown): void => orThrow(qmp(value, path, expected))

/**
 * `qmpAbsent` for tests outside Effect: throws `QmpAssertionError` when something is at `path`.
 *
 * @since 0.2.0
 * @category assertions
 */
export const assertQmpAbsent = (value: unknown, path: string): void => orThrow(qmpAbsent(value, path))
