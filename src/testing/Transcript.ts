/**
 * Transcripts: what a test sent to QEMU, what QEMU replied and which events it emitted, printed
 * one JSON per line as iotests' `log()` prints them, passed through iotests' standard filters
 * (timestamps, generated node names, the test directory, the image format), with every object's
 * keys in QEMU's order, and compared with a reference file.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Machine } from "effect-qemu"
 * import { Transcript } from "effect-qemu/testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults"] })
 *   const t = yield* Transcript.make(vm, { filters: Transcript.standardFilters({ testDir: vm.tempDir }) })
 *   yield* t.execute("blockdev-add", { "node-name": "drv0", driver: "null-co" })
 *   yield* t.log("=== done ===")
 *   yield* t.compare("test/reference/example.out")
 * }))
 * ```
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { lineDiff } from "../internal/lineDiff.js"
import * as LogJson from "../internal/logJson.js"
import type { QmpTarget } from "../internal/qmpTarget.js"
import { clientOf, timeoutOption } from "../internal/qmpTarget.js"
import type { ExecuteOptions, QmpClient } from "../Qmp.js"
import type { QmpArgumentError, QmpDisconnected, QmpEventError, QmpProtocolError } from "../QmpError.js"
import { QmpTimeout } from "../QmpError.js"
import type { EventPattern, QmpEvent, QmpResponse } from "../QmpMessage.js"
import { matches } from "../QmpMessage.js"

/**
 * A filter: takes a logged value (a reply, an event, arguments or a line of text) and returns it
 * rewritten. Filters never change what the test itself receives, only what is printed.
 *
 * @since 0.2.0
 * @category models
 */
export type Filter = (value: unknown) => unknown

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const walk = (value: unknown, f: (text: string) => string): unknown => {
  if (typeof value === "string") return f(value)
  if (Array.isArray(value)) return value.map((item) => walk(item, f))
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, f)]))
  return value
}

/**
 * A filter that rewrites every string (values, not keys), however deep (iotests' `filter_qmp`).
 *
 * @since 0.2.0
 * @category filters
 */
export const mapStrings = (f: (text: string) => string): Filter => (value) => walk(value, f)

/**
 * Replaces every match of `pattern` in every string.
 *
 * @since 0.2.0
 * @category filters
 */
export const replace = (pattern: RegExp | string, replacement: string): Filter =>
  mapStrings((text) =>
    typeof pattern === "string" ? text.replaceAll(pattern, replacement) : text.replace(toGlobal(pattern), replacement)
  )

const toGlobal = (pattern: RegExp): RegExp => pattern.global ? pattern : new RegExp(pattern.source, pattern.flags + "g")

/**
 * An event's `timestamp` becomes `{"seconds": "SECS", "microseconds": "USECS"}`, in place
 * (iotests' `filter_qmp_event`).
 *
 * @since 0.2.0
 * @category filters
 */
export const timestamps: Filter = (value) => {
  if (Array.isArray(value)) return value.map(timestamps)
  if (!isPlainObject(value) || !("event" in value) || !isPlainObject(value.timestamp)) return value
  return { ...value, timestamp: { seconds: "SECS", microseconds: "USECS" } }
}

/**
 * Node names QEMU generates (`#block123`) become `NODE_NAME` (iotests' `filter_generated_node_ids`).
 *
 * @since 0.2.0
 * @category filters
 */
export const nodeNames: Filter = replace(/#block[0-9]+/, "NODE_NAME")

/**
 * The test directory becomes `TEST_DIR` wherever a string mentions it (iotests' `filter_testfiles`).
 *
 * @since 0.2.0
 * @category filters
 */
export const testDir = (directory: string): Filter => replace(Path.resolve(directory), "TEST_DIR")

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/**
 * The image format's name, as a word, becomes `IMGFMT` (iotests' `filter_imgfmt`).
 *
 * @since 0.2.0
 * @category filters
 */
export const imageFormat = (format: string): Filter => replace(new RegExp(`\\b${escapeRegExp(format)}\\b`), "IMGFMT")

/**
 * The filters iotests apply to nearly everything: timestamps and generated node names, plus the
 * test directory and the image format when given.
 *
 * @since 0.2.0
 * @category filters
 */
export const standardFilters = (
  options: { readonly testDir?: string | undefined; readonly imageFormat?: string | undefined } = {}
): ReadonlyArray<Filter> => [
  timestamps,
  nodeNames,
  ...(options.testDir === undefined ? [] : [testDir(options.testDir)]),
  ...(options.imageFormat === undefined ? [] : [imageFormat(options.imageFormat)])
]

/**
 * Prints a value as iotests' `log()` does: text as it is, anything else as one line of JSON with
 * Python's separators (or spread over lines with `indent`), keys in the order they came.
 *
 * @since 0.2.0
 * @category formatting
 */
export const format = (value: unknown, options: { readonly indent?: number | undefined } = {}): string =>
  typeof value === "string" ? value : LogJson.format(value, options.indent)

/**
 * A transcript whose text differs from its reference file. The message holds a line diff; set
 * `EFFECT_QEMU_UPDATE_REFERENCE=1` (or pass `update: true`) to write the reference instead.
 *
 * @since 0.2.0
 * @category errors
 */
export class TranscriptMismatch extends Data.TaggedError("TranscriptMismatch")<{
  readonly reference: string
  /** Why: the texts differ, or the reference cannot be read. */
  readonly reason: "Differs" | "MissingReference"
  readonly diff: string
  readonly actual: string
}> {
  get message(): string {
    const hint = `(set ${updateVariable}=1 to write the reference from this run)`
    return this.reason === "MissingReference"
      ? `no reference output at ${this.reference} ${hint}`
      : `transcript differs from ${this.reference} ${hint}\n${this.diff}`
  }
}

/**
 * The environment variable that makes `compare` write the reference instead of checking it.
 *
 * @since 0.2.0
 * @category constants
 */
export const updateVariable = "EFFECT_QEMU_UPDATE_REFERENCE"

/**
 * Options of `make`.
 *
 * @since 0.2.0
 * @category models
 */
export interface TranscriptOptions {
  /** Applied in order to everything logged. Default: `standardFilters()`. */
  readonly filters?: ReadonlyArray<Filter> | undefined
  /** Which events are logged (as they arrive, before the next entry). Default: every event. */
  readonly events?: ((event: QmpEvent) => boolean) | undefined
  /** Spread JSON over lines with this indent. Default: one line per value. */
  readonly indent?: number | undefined
  /**
   * Whether commands are logged before their replies (iotests' `qmp_log`), or only the replies
   * (as shell-style iotests print them). Default: true.
   */
  readonly echo?: boolean | undefined
}

/**
 * Options of `Transcript.execute`.
 *
 * @since 0.2.0
 * @category models
 */
export interface LogExecuteOptions extends ExecuteOptions {
  /** Whether the command itself is logged before its reply. Default: the transcript's `echo`. */
  readonly echo?: boolean | undefined
}

/**
 * A transcript of one machine. Every operation first logs the events that arrived before it, so
 * the text reads in the order things happened: a command, its reply, the events it caused.
 *
 * @since 0.2.0
 * @category models
 */
export interface Transcript {
  /**
   * Logs a value or a line of text. With `after`, the events received up to that event are
   * logged first and the entry right after it, as when reacting to the event.
   */
  readonly log: (entry: unknown, options?: { readonly after?: QmpEvent | undefined }) => Effect.Effect<void>
  /** Runs a command, logs it and its raw reply (without the client's id), and returns the reply. */
  readonly execute: (
    command: string,
    args?: Record<string, unknown> | undefined,
    options?: LogExecuteOptions
  ) => Effect.Effect<QmpResponse, QmpTimeout | QmpDisconnected | QmpProtocolError | QmpArgumentError>
  /** Logs events as they arrive until one named `name` (matching `match`) is logged; returns it. */
  readonly waitEvent: (
    name: string | ReadonlyArray<string>,
    options?: { readonly match?: EventPattern | undefined; readonly timeout?: Duration.DurationInput }
  ) => Effect.Effect<QmpEvent, QmpEventError>
  /** The text so far, one entry per line, ending with a newline (events received so far included). */
  readonly text: Effect.Effect<string>
  /**
   * Compares the text with a reference file; on a difference fails with `TranscriptMismatch`
   * holding a line diff. With `update: true` (or `EFFECT_QEMU_UPDATE_REFERENCE=1`) writes the
   * reference instead.
   */
  readonly compare: (
    reference: string,
    options?: { readonly update?: boolean | undefined }
  ) => Effect.Effect<void, TranscriptMismatch>
}

/**
 * Starts a transcript of a machine (or a QMP client). It sees the events that arrive from now on,
 * until the scope closes.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (
  target: QmpTarget,
  options: TranscriptOptions = {}
): Effect.Effect<Transcript, never, Scope.Scope> =>
  Effect.gen(function*() {
    const qmp = clientOf(target)
    const subscription = yield* qmp.subscribe
    const lock = yield* Effect.makeSemaphore(1)
    const state = new Lines(options)
    const pendingEvents = Effect.map(subscription.poll, (events) => state.receive(events))
    const locked = <A, E>(effect: Effect.Effect<A, E>) => lock.withPermits(1)(Effect.zipRight(pendingEvents, effect))
    const text = locked(Effect.sync(() => state.flushText()))
    return {
      log: (entry, logOptions) => locked(Effect.sync(() => state.logAfter(entry, logOptions?.after))),
      execute: (command, args, executeOptions) =>
        locked(logExecute(qmp, state, command, args, { echo: options.echo, ...executeOptions })),
      waitEvent: (name, waitOptions) => locked(waitLogged(subscription.take, state, name, waitOptions)),
      text,
      compare: (reference, compareOptions) =>
        Effect.flatMap(text, (actual) => compare(reference, actual, compareOptions))
    } satisfies Transcript
  })

/** The lines written so far and the events received but not yet written. */
class Lines {
  private readonly lines: Array<string> = []
  private pending: Array<QmpEvent> = []
  constructor(private readonly options: TranscriptOptions) {}

  receive(events: ReadonlyArray<QmpEvent>): void {
    this.pending.push(...events)
  }

  write(entry: unknown): void {
    let value = entry
    for (const filter of this.options.filters ?? standardFilters()) value = filter(value)
    this.lines.push(format(value, { indent: this.options.indent }))
  }

  /** Writes pending events up to and including `event` (all of them when it is not pending). */
  writeEventsUntil(event: QmpEvent | undefined): void {
    const index = event === undefined ? -1 : this.pending.indexOf(event)
    const upTo = index < 0 ? this.pending.length : index + 1
    const wanted = this.options.events ?? (() => true)
    this.pending.slice(0, upTo).forEach((pending) => wanted(pending) && this.write(pending))
    this.pending = this.pending.slice(upTo)
  }

  /** Writes `entry`, after the pending events up to `after` (none if it was written already). */
  logAfter(entry: unknown, after: QmpEvent | undefined): void {
    if (after === undefined || this.pending.includes(after)) this.writeEventsUntil(after)
    this.write(entry)
  }

  /** The first pending event that `test` accepts, with every event before it written. */
  takeUntil(test: (event: QmpEvent) => boolean): QmpEvent | undefined {
    const found = this.pending.find(test)
    if (found === undefined) this.writeEventsUntil(undefined)
    else this.writeEventsUntil(found)
    return found
  }

  flushText(): string {
    this.writeEventsUntil(undefined)
    return this.lines.map((line) => line + "\n").join("")
  }
}

const logExecute = (
  qmp: QmpClient,
  state: Lines,
  command: string,
  args: Record<string, unknown> | undefined,
  options: LogExecuteOptions | undefined
) =>
  Effect.gen(function*() {
    state.writeEventsUntil(undefined)
    if (options?.echo !== false) {
      state.write(args === undefined ? { execute: command } : { execute: command, arguments: args })
    }
    const reply = yield* qmp.raw(command, args, options)
    state.write(reply)
    return reply
  })

const waitLogged = (
  take: Effect.Effect<QmpEvent, QmpDisconnected | QmpProtocolError>,
  state: Lines,
  name: string | ReadonlyArray<string>,
  options: { readonly match?: EventPattern | undefined; readonly timeout?: Duration.DurationInput } | undefined
): Effect.Effect<QmpEvent, QmpEventError> => {
  const names = typeof name === "string" ? [name] : name
  const test = (event: QmpEvent) =>
    names.includes(event.event) && (options?.match === undefined || matches(event, options.match))
  const next: Effect.Effect<QmpEvent, QmpDisconnected | QmpProtocolError> = Effect.suspend(() => {
    const found = state.takeUntil(test)
    return found !== undefined
      ? Effect.succeed(found)
      : Effect.zipRight(Effect.map(take, (event) => state.receive([event])), next)
  })
  const operation = `transcript event ${names.join("|")}`
  return Effect.flatMap(
    timeoutOption(operation, options?.timeout),
    (timeout) =>
      Effect.timeoutFail(next, { duration: timeout, onTimeout: () => new QmpTimeout({ operation, timeout }) })
  )
}

const compare = (
  reference: string,
  actual: string,
  options: { readonly update?: boolean | undefined } | undefined
): Effect.Effect<void, TranscriptMismatch> =>
  Effect.suspend(() => {
    const update = options?.update ?? ["1", "true", "yes"].includes(process.env[updateVariable] ?? "")
    if (update) {
      Fs.mkdirSync(Path.dirname(reference), { recursive: true })
      Fs.writeFileSync(reference, actual)
      return Effect.void
    }
    let expected: string
    try {
      expected = Fs.readFileSync(reference, "utf8")
    } catch {
      return Effect.fail(new TranscriptMismatch({ reference, reason: "MissingReference", diff: "", actual }))
    }
    if (expected === actual) return Effect.void
    return Effect.fail(
      new TranscriptMismatch({ reference, reason: "Differs", diff: lineDiff(expected, actual), actual })
    )
  })
