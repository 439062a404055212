/**
 * The messages of the QMP wire protocol: greeting, replies and events, and event matching.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import type { EventData } from "./QmpCommands.js"

/**
 * The version QEMU reports in its greeting.
 *
 * @since 0.1.0
 * @category models
 */
export const QmpVersion = Schema.Struct({
  qemu: Schema.Struct({ major: Schema.Int, minor: Schema.Int, micro: Schema.Int }),
  package: Schema.String
})

/**
 * @since 0.1.0
 * @category models
 */
export type QmpVersion = typeof QmpVersion.Type

/**
 * The greeting QEMU sends as soon as a client connects.
 *
 * @since 0.1.0
 * @category models
 */
export const QmpGreeting = Schema.Struct({
  QMP: Schema.Struct({
    version: QmpVersion,
    capabilities: Schema.Array(Schema.String)
  })
})

/**
 * @since 0.1.0
 * @category models
 */
export type QmpGreeting = typeof QmpGreeting.Type

/**
 * When QEMU emitted an event.
 *
 * @since 0.1.0
 * @category models
 */
export interface QmpTimestamp {
  readonly seconds: number
  readonly microseconds: number
}

/**
 * An asynchronous event, e.g. `STOP`, `RESUME`, `SHUTDOWN`. `data` is typed for events known to
 * the generated surface.
 *
 * @since 0.1.0
 * @category models
 */
export interface QmpEvent<K extends string = string> {
  readonly event: K
  readonly data: EventData<K>
  readonly timestamp: QmpTimestamp
}

/**
 * A successful reply as it came off the wire.
 *
 * @since 0.1.0
 * @category models
 */
export interface QmpSuccess {
  readonly return: unknown
  readonly id?: unknown
}

/**
 * An error reply as it came off the wire.
 *
 * @since 0.1.0
 * @category models
 */
export interface QmpFailure {
  readonly error: { readonly class: string; readonly desc: string }
  readonly id?: unknown
}

/**
 * A raw reply to a command: what Python's `QEMUMachine.qmp()` returns.
 *
 * @since 0.1.0
 * @category models
 */
export type QmpResponse = QmpSuccess | QmpFailure

/**
 * Whether a reply is an error reply.
 *
 * @since 0.1.0
 * @category models
 */
export const isFailure = (response: QmpResponse): response is QmpFailure => "error" in response

/**
 * A pattern an event must contain, compared recursively: every key of the pattern must be
 * present in the event with a matching value; `null` (or `undefined`) matches anything; any
 * other value must be equal. For example `{ data: { reason: "host-qmp-quit" } }`.
 *
 * @since 0.1.0
 * @category models
 */
export type EventPattern = unknown

/**
 * Whether `value` contains everything `pattern` asks for (see {@link EventPattern}).
 *
 * @since 0.1.0
 * @category combinators
 * @example
 * ```ts
 * import { matches } from "effect-qemu/QmpMessage"
 * matches({ data: { device: "d0", len: 5 } }, { data: { device: "d0" } }) // true
 * matches({ data: { device: "d0" } }, { data: { device: null } })          // true
 * matches({ data: {} }, { data: { device: null } })                         // false
 * ```
 */
export const matches = (value: unknown, pattern: EventPattern): boolean => {
  if (pattern === null || pattern === undefined) return true
  if (typeof pattern !== "object") return value === pattern
  if (typeof value !== "object" || value === null) return false
  if (Array.isArray(pattern)) {
    if (!Array.isArray(value) || value.length !== pattern.length) return false
    return pattern.every((item, index) => matches(value[index], item))
  }
  const record = value as Record<string, unknown>
  for (const key of Object.keys(pattern)) {
    if (!(key in record)) return false
    if (!matches(record[key], (pattern as Record<string, unknown>)[key])) return false
  }
  return true
}

/**
 * What an event waiter looks for: one or more event names, each with an optional pattern
 * ({@link EventPattern}) or predicate.
 *
 * @since 0.1.0
 * @category models
 */
export interface EventFilter {
  readonly name: string
  readonly match?: EventPattern | ((event: QmpEvent) => boolean)
}

/**
 * The filter name that every event matches (QEMU's event names are upper-case identifiers, so it
 * names no event of its own).
 *
 * @since 0.2.0
 * @category models
 */
export const anyEvent = "*"

/**
 * Whether an event satisfies one of the filters.
 *
 * @since 0.1.0
 * @category combinators
 */
export const matchesAny = (event: QmpEvent, filters: ReadonlyArray<EventFilter>): boolean =>
  filters.some((filter) =>
    (filter.name === event.event || filter.name === anyEvent) &&
    (typeof filter.match === "function" ? filter.match(event) : matches(event, filter.match))
  )

/**
 * A refinement that narrows events by name, so that `data` gets its generated type.
 *
 * @since 0.1.0
 * @category combinators
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Qmp, QmpMessage } from "effect-qemu"
 *
 * // Stream<QmpEvent<"STOP" | "RESUME">>
 * const runState = Effect.map(Qmp.Qmp, (qmp) => Stream.filter(qmp.events, QmpMessage.isEvent("STOP", "RESUME")))
 * ```
 */
export const isEvent = <K extends string>(...names: ReadonlyArray<K>) => (event: QmpEvent): event is QmpEvent<K> =>
  names.includes(event.event as K)
