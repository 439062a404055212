/**
 * The QMP client: a typed, concurrent connection to a QEMU monitor.
 *
 * One connection serves any number of fibers at once. Each request carries its own id and gets
 * its own reply; a late reply to a request that timed out or was interrupted is dropped. Events
 * flow to subscribers as a `Stream`, and into a bounded mailbox from which `waitEvent` takes.
 * When the connection ends, everything pending fails with one typed error, in one place.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import type { Duplex } from "node:stream"
import type { SchemaIndex, SchemaInfoList } from "./codegen/Introspect.js"
import { makeIndex } from "./codegen/Introspect.js"
import * as ExactJson from "./internal/exactJson.js"
import { LineDecoder, preview, printable } from "./internal/lineDecoder.js"
import { Catalog, commandNames } from "./internal/qmp/catalog.js"
import * as Events from "./internal/qmp/events.js"
import * as ScmRights from "./internal/ScmRights.js"
import * as Timer from "./internal/timer.js"
import { withHotSpan } from "./internal/tracing.js"
import * as Transport from "./internal/transport.js"
import type {
  ArgsOption,
  CommandName,
  CommandNameOf,
  CommandReturn,
  EventMatch,
  EventName,
  EventNameOf,
  ExecuteParams,
  NameInput,
  UntypedName
} from "./QmpCommands.js"
import { untyped } from "./QmpCommands.js"
import {
  QmpArgumentError,
  QmpConnectError,
  QmpDisconnected,
  QmpMatchError,
  QmpProtocolError,
  QmpTimeout,
  ScmRightsError
} from "./QmpError.js"
import { QmpCommandError, QmpReplyError } from "./QmpError.js"
import type { QmpCommandUnavailable, QmpEventError, QmpExecuteError } from "./QmpError.js"
import type { EventFilter, QmpEvent, QmpFailure, QmpResponse } from "./QmpMessage.js"
import { anyEvent, isFailure, matchesAny, QmpGreeting } from "./QmpMessage.js"
import { validateArgs } from "./QmpValidate.js"

/**
 * How a session behaves. Every field has a default.
 *
 * @since 0.1.0
 * @category models
 */
export interface QmpOptions {
  /** A name for logs and spans, e.g. the machine's name. Default: the address. */
  readonly name?: string | undefined
  /** How long to wait for QEMU's greeting. Default: 10 seconds. */
  readonly greetingTimeout?: Duration.DurationInput | undefined
  /** Default timeout of every command; `Duration.infinity` for none. Default: 60 seconds. */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /** Enable out-of-band execution when QEMU offers it. Default: false. */
  readonly oob?: boolean | undefined
  /**
   * The largest message accepted from QEMU, in bytes. A longer one is a protocol error and
   * closes the connection. Default: 16 MiB (QEMU 7.2's `query-qmp-schema` is about 200 KiB).
   */
  readonly maxMessageBytes?: number | undefined
  /**
   * How many events the mailbox and each subscriber keep when nobody takes them. Past that the
   * oldest are dropped, so an event flood costs bounded memory. Default: 1024.
   */
  readonly eventBufferSize?: number | undefined
  /**
   * How many bytes of events (as they arrived on the wire) the mailbox and each subscriber keep
   * when nobody takes them; past that the oldest are dropped. Dropped events are logged, once per
   * burst. Default: 32 MiB.
   */
  readonly eventBufferBytes?: number | undefined
  /**
   * Check every command's arguments against QEMU's live schema (`query-qmp-schema`, fetched
   * once at connect) before sending it; a mismatch fails with `QmpArgumentError` naming the
   * member, instead of QEMU's generic error. Default: false.
   */
  readonly checkArgs?: boolean | undefined
  /**
   * Refuse, before sending, a command the running QEMU does not have, with
   * `QmpCommandUnavailable` naming QEMU's version and the closest command it has. The list comes
   * from `query-commands`, asked once per session when a command outside the core every QEMU has
   * is first executed (`raw` is never checked). Default: true.
   */
  readonly checkCommands?: boolean | undefined
  /**
   * Decode every reply of a command known to the bundled surface with its generated `Schema`;
   * a mismatch fails with `QmpReplyError`. Default: false.
   */
  readonly decodeReplies?: boolean | undefined
}

/**
 * Where to reach a QMP monitor.
 * - `{ _tag: "Duplex" }`: an already connected Node stream, e.g. the socketpair end a spawner holds.
 * - `{ _tag: "Unix" }`: a UNIX socket path that QEMU listens on (`-qmp unix:PATH,server=on,wait=off`).
 * - `{ _tag: "Tcp" }`: host and port that QEMU listens on.
 *
 * @since 0.1.0
 * @category models
 */
export type QmpAddress =
  | { readonly _tag: "Duplex"; readonly duplex: Duplex; readonly label?: string | undefined }
  | { readonly _tag: "Unix"; readonly path: string }
  | { readonly _tag: "Tcp"; readonly host: string; readonly port: number }

/**
 * Per-call options of `execute` and `raw`.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExecuteOptions {
  /** Overrides the session's `commandTimeout` for this call. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Send as `exec-oob` (needs the `oob` capability to be enabled). */
  readonly oob?: boolean | undefined
  /** Rewrite top-level argument keys `foo_bar` to `foo-bar`. Default: false. */
  readonly convertKeys?: boolean | undefined
}

/**
 * Options of `waitEvent`.
 *
 * @since 0.1.0
 * @category models
 */
export interface WaitEventOptions<K extends string = string> {
  /**
   * A pattern the event must contain (typed against the event: a misspelt member does not
   * compile), or a predicate on the typed event.
   */
  readonly match?: EventMatch<K> | undefined
  /** How long to wait. Default: 60 seconds; `Duration.infinity` for no bound. */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * Whether an event already in the mailbox (received earlier and not taken yet) may satisfy
   * the wait. Default: true, so `execute("stop")` then `waitEvent("STOP")` never misses the
   * event. Set false to wait only for events that arrive after the call.
   */
  readonly buffered?: boolean | undefined
}

/**
 * A live subscription to the event flow: it sees every event that arrives after it was made,
 * up to `eventBufferSize` unread (older ones dropped).
 *
 * @since 0.1.0
 * @category models
 */
export interface EventSubscription {
  /** The next event, whatever its name. Fails when the connection ends. */
  readonly take: Effect.Effect<QmpEvent, QmpDisconnected | QmpProtocolError>
  /** Skips events until one matches, within the timeout. Names are checked as `Qmp.waitEvent`'s. */
  readonly waitEvent: <K extends NameInput<EventName>>(
    name: EventNameOf<K> | ReadonlyArray<EventNameOf<K>>,
    options?: Omit<WaitEventOptions<K>, "buffered">
  ) => Effect.Effect<QmpEvent<K>, QmpEventError>
  /** The subscription's events as a stream; ends when the connection ends. */
  readonly stream: Stream.Stream<QmpEvent>
}

/**
 * Options of `nextEvent` and `nextEvents`.
 *
 * @since 0.2.0
 * @category models
 */
export interface NextEventOptions {
  /** How long to wait for an event. Default: 60 seconds; `Duration.infinity` for no bound. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Whether an event already in the mailbox counts. Default: true. */
  readonly buffered?: boolean | undefined
}

/**
 * Options of `hmp`.
 *
 * @since 0.2.0
 * @category models
 */
export interface HmpOptions extends ExecuteOptions {
  /** The CPU the command runs on (`cpu-index`), for commands such as `info registers`. */
  readonly cpuIndex?: number | undefined
}

/**
 * Options of `executeAndWait`: the command's `args` (typed as `execute`'s), the `event` (or
 * events) it causes, a `match` on that event, the wait's `timeout` and the command's
 * `commandTimeout`.
 *
 * @since 0.1.0
 * @category models
 */
export type ExecuteAndWaitOptions<K extends string, E extends string> =
  & ArgsOption<K>
  & Omit<WaitEventOptions<E>, "buffered">
  & {
    /** The event the command causes, or any of several. */
    readonly event: EventNameOf<E> | ReadonlyArray<EventNameOf<E>>
    /** Overrides the session's `commandTimeout` for the command. */
    readonly commandTimeout?: Duration.DurationInput | undefined
  }

/**
 * The operations of a QMP session.
 *
 * @since 0.1.0
 * @category models
 */
export interface QmpClient {
  /** The session's name, as used in logs and spans. */
  readonly name: string
  /** Where the session is connected. */
  readonly address: string
  /** QEMU's greeting, decoded. */
  readonly greeting: QmpGreeting
  /** QEMU's version as `major.minor.micro`. */
  readonly version: string
  /** The capabilities enabled in negotiation, e.g. `["oob"]`. */
  readonly capabilities: ReadonlyArray<string>
  /**
   * Runs a command and returns its `return` value; an error reply fails with `QmpCommandError`.
   * Known names complete in the editor and are typed; a misspelt one does not compile. A command
   * the surface does not know is reached untyped with `QmpCommands.untyped("name")` (or a name
   * typed `string`; see `QmpCommands.CheckedName`). A `quit` whose reply is cut off by QEMU's exit
   * succeeds.
   */
  readonly execute: <K extends NameInput<CommandName>>(
    command: CommandNameOf<K>,
    ...params: ExecuteParams<K, ExecuteOptions>
  ) => Effect.Effect<CommandReturn<K>, QmpExecuteError>
  /**
   * Passes an open file descriptor to QEMU (as SCM_RIGHTS on the monitor socket) and runs the
   * command that takes it, e.g. `getfd` with `{ fdname }` or `add-fd`. Needs a UNIX-socket
   * monitor (the default socketpair is one). Other requests wait meanwhile.
   */
  readonly executeWithFd: (
    fd: number,
    command: "getfd" | "add-fd" | (string & {}),
    args?: Record<string, unknown> | undefined,
    options?: ExecuteOptions
  ) => Effect.Effect<unknown, QmpExecuteError | ScmRightsError>
  /**
   * Runs a command and returns the raw reply, error replies included, as QEMU meant it: without
   * the `id` the client added (Python's `QEMUMachine.qmp()`), so it compares with golden output.
   */
  readonly raw: (
    command: string,
    args?: Record<string, unknown> | undefined,
    options?: ExecuteOptions
  ) => Effect.Effect<QmpResponse, QmpTimeout | QmpDisconnected | QmpProtocolError | QmpArgumentError>
  /**
   * Waits for an event by name (or any of several names), optionally matching a pattern. Names
   * are checked as `execute`'s: known ones complete, misspelt ones do not compile, others go
   * through `QmpCommands.untyped`.
   */
  readonly waitEvent: <K extends NameInput<EventName>>(
    name: EventNameOf<K> | ReadonlyArray<EventNameOf<K>>,
    options?: WaitEventOptions<K>
  ) => Effect.Effect<QmpEvent<K>, QmpEventError>
  /** Waits for the first event that satisfies any of the filters (Python's `QEMUMachine.events_wait`). */
  readonly waitEvents: (
    filters: ReadonlyArray<EventFilter>,
    options?: Omit<WaitEventOptions, "match">
  ) => Effect.Effect<QmpEvent, QmpEventError>
  /**
   * Subscribes first, runs the command, then waits for the event it causes, so that the event
   * cannot be missed or confused with an older one. Returns the command's result and the event.
   *
   * @example
   * ```ts
   * const [, deleted] = yield* qmp.executeAndWait("device_del", {
   *   args: { id: "nic1" },
   *   event: "DEVICE_DELETED",
   *   match: { data: { device: "nic1" } },
   *   timeout: "10 seconds"
   * })
   * ```
   */
  readonly executeAndWait: <K extends NameInput<CommandName>, E extends NameInput<EventName>>(
    command: CommandNameOf<K>,
    options: ExecuteAndWaitOptions<K, E>
  ) => Effect.Effect<readonly [CommandReturn<K>, QmpEvent<E>], QmpExecuteError>
  /** A live subscription; see {@link EventSubscription}. */
  readonly subscribe: Effect.Effect<EventSubscription, never, Scope.Scope>
  /** Every event that arrives while the stream runs. Ends when the connection ends. */
  readonly events: Stream.Stream<QmpEvent>
  /** Takes every event from the mailbox, oldest first (Python's `QEMUMachine.get_qmp_events`). */
  readonly takeEvents: Effect.Effect<ReadonlyArray<QmpEvent>>
  /**
   * Takes the oldest event from the mailbox whatever its name, waiting for one to arrive when
   * the mailbox is empty (`buffered: false`: only an event that arrives after the call).
   */
  readonly nextEvent: (options?: NextEventOptions) => Effect.Effect<QmpEvent, QmpEventError>
  /**
   * Waits until the mailbox holds at least one event, then takes them all, oldest first (Python's
   * `get_qmp_events(wait=True)`): the core loop of block-job tests.
   */
  readonly nextEvents: (options?: NextEventOptions) => Effect.Effect<ReadonlyArray<QmpEvent>, QmpEventError>
  /**
   * Runs an HMP command line (`human-monitor-command`) and returns the text QEMU printed, e.g.
   * `hmp("info block")` or `hmp("qemu-io drive0 \"write -P 0xab 0 64k\"")`.
   */
  readonly hmp: (
    commandLine: string,
    options?: HmpOptions
  ) => Effect.Effect<string, QmpExecuteError>
  /** Empties the mailbox. */
  readonly clearEvents: Effect.Effect<void>
  /**
   * The last `SHUTDOWN` event of the session, whether or not anyone took it: who asked QEMU to
   * stop (`guest`) and why (`reason`). The machine reports it with QEMU's exit status.
   */
  readonly lastShutdown: Effect.Effect<Option.Option<QmpEvent<"SHUTDOWN">>>
  /** Whether the connection is still open. */
  readonly isOpen: Effect.Effect<boolean>
  /** Waits until the connection ends and tells why. */
  readonly closed: Effect.Effect<QmpDisconnected | QmpProtocolError>
  /** Closes the connection now. Idempotent. */
  readonly close: Effect.Effect<void>
  /** The Node socket underneath, when there is one (used to pass file descriptors). */
  readonly duplex: Duplex | undefined
}

/**
 * Everything passing a descriptor can fail with.
 *
 * @since 0.1.0
 * @category errors
 */
export type FdError = QmpExecuteError | ScmRightsError

/**
 * The QMP service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Qmp extends Context.Tag("effect-qemu/Qmp")<Qmp, QmpClient>() {}

/** A request awaiting its reply: resumes its caller with the reply, or with the session's end. */
interface PendingRequest {
  readonly reply: (response: QmpResponse) => void
  readonly fail: (error: QmpDisconnected | QmpProtocolError) => void
}

interface Waiter {
  readonly filters: ReadonlyArray<EventFilter>
  readonly deferred: Deferred.Deferred<QmpEvent, QmpDisconnected | QmpProtocolError | QmpMatchError>
}

/**
 * A result that arrives once, awaited under a bound by a plain timer: `Effect.timeout` forks a
 * fiber to race a sleep, which on the launch path cost more than the wait it bounded.
 */
class OneShot<A, E> {
  private result: Effect.Effect<A, E> | undefined
  private readonly waiters = new Set<(result: Effect.Effect<A, E>) => void>()

  done(result: Effect.Effect<A, E>): void {
    if (this.result !== undefined) return
    this.result = result
    for (const waiter of this.waiters) waiter(result)
    this.waiters.clear()
  }

  await<E2>(timeout: Duration.Duration, onTimeout: () => E2): Effect.Effect<A, E | E2> {
    return Timer.awaitWithin<A, E, E2>(timeout, (resume) => {
      if (this.result !== undefined) {
        resume(this.result)
        return () => {}
      }
      this.waiters.add(resume)
      return () => this.waiters.delete(resume)
    }, onTimeout)
  }
}

const defaultGreetingTimeout = Duration.seconds(10)
const defaultCommandTimeout = Duration.seconds(60)
const defaultEventTimeout = Duration.seconds(60)
const defaultMaxMessageBytes = 16 * 1024 * 1024
const defaultEventBufferSize = 1024
const defaultEventBufferBytes = 32 * 1024 * 1024

const decodeGreeting = Schema.decodeUnknownEither(QmpGreeting)

const toFilters = (
  name: string | ReadonlyArray<string>,
  match: EventFilter["match"]
): ReadonlyArray<EventFilter> => (typeof name === "string" ? [name] : name).map((one) => ({ name: one, match }))

const convertKeys = (args: Record<string, unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(args)) out[key.replaceAll("_", "-")] = value
  return out
}

/** The error of an error reply; a peer may omit `desc` or send something other than text. */
const commandError = (command: string, response: QmpFailure, args: Record<string, unknown> | undefined) => {
  const { class: errorClass, desc } = response.error as { readonly class: unknown; readonly desc?: unknown }
  return new QmpCommandError({
    command,
    errorClass: typeof errorClass === "string" ? errorClass : preview(errorClass),
    desc: typeof desc === "string" ? desc : desc === undefined ? "(QEMU gave no description)" : preview(desc),
    args
  })
}

/** `validateArgs`, which walks the caller's value recursively: one too deep to walk is refused. */
const checkArgs = (index: SchemaIndex, command: string, args: unknown): QmpArgumentError | undefined => {
  try {
    const checked = validateArgs(index, command, args)
    return Either.isLeft(checked) ? checked.left : undefined
  } catch (error) {
    return new QmpArgumentError({ command, reason: "NotSerializable", path: "", detail: describeThrown(error) })
  }
}

/**
 * Logs something that can happen in bursts at most once a second: the first time with an example,
 * later with how many more there were since the last line.
 */
const burstLog = (log: (text: string) => void, what: string) => {
  let lastLogged = 0
  let since = 0
  return (example: string): void => {
    since++
    const now = Date.now()
    if (now - lastLogged < 1000) return
    log(`dropped ${since} ${what}; the latest: ${example}`)
    lastLogged = now
    since = 0
  }
}

/** What a thrown value says, without trusting it to be an `Error`. */
const describeThrown = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : preview(error, 100)

/** An error's message; a formatter that cannot print a peer's value (too deep) must not throw. */
const safeMessage = (error: { readonly message: string }): string => {
  try {
    return error.message
  } catch (thrown) {
    return `(the error could not be formatted: ${describeThrown(thrown)})`
  }
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** A session option that must be a positive duration; anything else fails the connection attempt. */
const sessionTimeout = (
  address: string,
  field: string,
  input: Duration.DurationInput | undefined,
  fallback: Duration.Duration
): Effect.Effect<Duration.Duration, QmpConnectError> =>
  Either.match(Timer.decodeTimeoutOr(input, fallback), {
    onLeft: (detail) =>
      Effect.fail(new QmpConnectError({ reason: "InvalidOptions", address, detail: `${field}: ${detail}` })),
    onRight: Effect.succeed
  })

const bounded = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  timeout: Duration.DurationInput,
  operation: string
): Effect.Effect<A, E | QmpTimeout | QmpArgumentError, R> => {
  const decoded = Timer.decodeTimeout(timeout)
  if (Either.isLeft(decoded)) {
    return Effect.fail(
      new QmpArgumentError({ command: operation, reason: "InvalidOption", path: "timeout", detail: decoded.left })
    )
  }
  const duration = decoded.right
  if (!Duration.isFinite(duration)) return effect
  // Interruptible inside, so that the bound holds even in an uninterruptible region (a finalizer).
  return Effect.timeoutFail(Effect.interruptible(effect), {
    duration,
    onTimeout: () => new QmpTimeout({ operation, timeout: duration })
  })
}

/**
 * Whether an event satisfies a waiter's filters. A caller's predicate may throw (say, reading
 * `data.reason` of an event without data): that is the waiter's error, never the session's.
 */
/** A reply as QEMU meant it: without the id the client added to its request. */
const withoutId = (response: QmpResponse): QmpResponse => {
  const { id: _id, ...reply } = response as QmpResponse & { readonly id?: unknown }
  return reply as QmpResponse
}

/** The filter of `nextEvent`: any event. */
const nextAny: ReadonlyArray<EventFilter> = [{ name: anyEvent }]

const matchSafely = (event: QmpEvent, filters: ReadonlyArray<EventFilter>): boolean | QmpMatchError => {
  try {
    return matchesAny(event, filters)
  } catch (cause) {
    return new QmpMatchError({ event: event.event, detail: describeThrown(cause), cause })
  }
}

const describeAddress = (address: QmpAddress): string => {
  switch (address._tag) {
    case "Duplex":
      return address.label ?? "socketpair"
    case "Unix":
      return `unix:${address.path}`
    case "Tcp":
      return `tcp:${address.host}:${address.port}`
  }
}

const openNet = (address: Exclude<QmpAddress, { _tag: "Duplex" }>, label: string, timeout: Duration.Duration) =>
  Effect.acquireRelease(
    Transport.connectNet(address._tag === "Unix" ? { path: address.path } : address, timeout).pipe(
      Effect.mapError((failure) =>
        new QmpConnectError({
          reason: "Open",
          address: label,
          detail: failure.cause === undefined ? `${failure.detail} (greetingTimeout)` : failure.detail,
          cause: failure.cause
        })
      )
    ),
    (socket) => Effect.sync(() => socket.destroy())
  )

/** QEMU's version from its greeting, as `major.minor.micro`. */
const versionOf = (greeting: QmpGreeting): string => {
  const { major, micro, minor } = greeting.QMP.version.qemu
  return `${major}.${minor}.${micro}`
}

/**
 * Opens a QMP session over a transport that is already connected: reads the greeting,
 * negotiates capabilities and returns the client. The session ends when the scope closes.
 *
 * @internal
 */
const makeSession = (
  transport: Transport.Transport,
  options: QmpOptions
): Effect.Effect<QmpClient, QmpConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    const address = transport.address
    const name = options.name ?? address
    const commandTimeout = yield* sessionTimeout(
      address,
      "commandTimeout",
      options.commandTimeout,
      defaultCommandTimeout
    )
    const greetingTimeout = yield* sessionTimeout(
      address,
      "greetingTimeout",
      options.greetingTimeout,
      defaultGreetingTimeout
    )

    /** A call's own timeout, or the session's; a value that is no positive duration is the caller's error. */
    const requestTimeout = (command: string, options: ExecuteOptions | undefined) => {
      if (options?.timeout === undefined) return commandTimeout
      const decoded = Timer.decodeTimeout(options.timeout)
      return Either.isRight(decoded)
        ? decoded.right
        : new QmpArgumentError({ command, reason: "InvalidOption", path: "timeout", detail: decoded.left })
    }
    const bufferSize = Math.max(1, options.eventBufferSize ?? defaultEventBufferSize)
    const decoder = new LineDecoder(options.maxMessageBytes ?? defaultMaxMessageBytes)

    // Things worth a log line that happen in a socket callback, logged with the session's annotations.
    const runtime = yield* Effect.runtime<never>()
    const diagnose = (text: string) => {
      Runtime.runFork(runtime)(Effect.logWarning(text))
    }

    /** Requests awaiting their reply, by id: each entry resumes its caller (and stops its timer). */
    const pending = new Map<number, PendingRequest>()
    let nextId = 1
    const waiters = new Set<Waiter>()
    const subscribers = new Set<Events.Inbox>()
    const droppedEvents = burstLog(diagnose, "QMP events nobody took (eventBufferSize / eventBufferBytes)")
    const bounds: Events.Bounds = {
      maxEvents: bufferSize,
      maxBytes: Math.max(1, options.eventBufferBytes ?? defaultEventBufferBytes),
      onDrop: (event) => droppedEvents(event.event)
    }
    const mailbox = new Events.Backlog(bounds)
    let endedWith: QmpDisconnected | QmpProtocolError | undefined
    const ended = Deferred.unsafeMake<QmpDisconnected | QmpProtocolError>(FiberId.none)
    const greeted = new OneShot<QmpGreeting, QmpConnectError>()

    // The one place where the session ends: every pending call, waiter and subscriber is told.
    const terminate = (error: QmpDisconnected | QmpProtocolError) => {
      if (endedWith !== undefined) return
      endedWith = error
      const failure = Effect.fail(error)
      for (const request of pending.values()) request.fail(error)
      pending.clear()
      for (const waiter of waiters) Deferred.unsafeDone(waiter.deferred, failure)
      waiters.clear()
      for (const inbox of subscribers) inbox.end()
      greeted.done(
        Effect.fail(
          new QmpConnectError({
            reason: error._tag === "QmpProtocolError" ? "BadGreeting" : "Closed",
            address,
            detail: error.message,
            cause: error
          })
        )
      )
      Deferred.unsafeDone(ended, Effect.succeed(error))
      transport.destroy()
    }

    // The detail quotes the peer's bytes (and JSON.parse's message quotes them again): escaped here, once.
    const protocolError = (reason: QmpProtocolError["reason"], detail: string) =>
      terminate(new QmpProtocolError({ reason, detail: printable(detail) }))

    let lastShutdown: QmpEvent | undefined
    const deliverEvent = (event: QmpEvent) => {
      if (event.event === "SHUTDOWN") lastShutdown = event
      let taken = false
      for (const waiter of waiters) {
        const matched = matchSafely(event, waiter.filters)
        if (matched === false) continue
        waiters.delete(waiter)
        if (matched === true) {
          Deferred.unsafeDone(waiter.deferred, Effect.succeed(event))
          taken = true
        } else {
          Deferred.unsafeDone(waiter.deferred, Effect.fail(matched))
        }
      }
      if (!taken) mailbox.add(event)
      for (const inbox of subscribers) inbox.offer(event)
    }

    let greetedDone = false
    const dispatch = (message: unknown): void => {
      if (!isRecord(message)) {
        return protocolError("NotQmp", `expected a JSON object, got ${preview(message)}`)
      }
      if ("QMP" in message) {
        if (greetedDone) return protocolError("UnexpectedGreeting", "a second greeting arrived")
        greetedDone = true
        const decoded = decodeGreeting(message)
        if (Either.isLeft(decoded)) {
          return protocolError("NotQmp", `malformed greeting: ${safeMessage(decoded.left).slice(0, 300)}`)
        }
        greeted.done(Effect.succeed(decoded.right))
        return
      }
      if (!greetedDone) {
        return protocolError("NotQmp", `expected the QMP greeting, got ${preview(message)}`)
      }
      if (typeof message.event === "string") {
        const timestamp = isRecord(message.timestamp) ? message.timestamp : { seconds: 0, microseconds: 0 }
        const event: QmpEvent = { event: message.event, data: message.data as never, timestamp: timestamp as never }
        Events.recordSize(event, messageBytes)
        return deliverEvent(event)
      }
      if ("return" in message || (isRecord(message.error) && typeof message.error.class === "string")) {
        if (!("id" in message)) return answerUnparsed(message)
        const id = message.id
        if (typeof id !== "number" || !Number.isInteger(id) || id < 1 || id >= nextId) {
          // QMP's spec: a client drops replies it cannot match. Nothing waits on them.
          return diagnose(`dropped a QMP reply to a request never sent: ${preview(message)}`)
        }
        const request = pending.get(id)
        // An id that was issued but is no longer pending belongs to a call that timed out or was
        // interrupted: its late reply is dropped, never handed to another caller.
        if (request === undefined) return
        pending.delete(id)
        request.reply(message as unknown as QmpResponse)
        return
      }
      return protocolError("NotQmp", `not a QMP message: ${preview(message)}`)
    }

    /**
     * A reply without an id is QEMU's answer to input it could not parse. The client never sends
     * such input (requests beyond QEMU's parser limits are refused before sending), and one bad
     * input can draw a thousand such replies (QEMU reads what is left of it as more input), so
     * none of them can be matched to a request: they are dropped, as QMP's spec says, and logged
     * once per burst.
     */
    const unparsedDropped = burstLog(diagnose, "QMP replies without an id (QEMU could not parse some input)")
    const answerUnparsed = (message: Record<string, unknown>) => unparsedDropped(preview(message))

    // Runs from the socket's data callback: nothing a peer sends may throw out of it. What the
    // checks above did not foresee ends the session with a protocol error instead of the process.
    let messageBytes = 0
    const dispatchGuarded = (message: unknown, bytes: number): void => {
      messageBytes = bytes
      try {
        dispatch(message)
      } catch (error) {
        protocolError("NotQmp", `a message could not be handled (${describeThrown(error)}): ${preview(message)}`)
      }
    }

    const onData = (chunk: Uint8Array) => {
      if (endedWith !== undefined) return
      const result = decoder.push(chunk)
      for (let i = 0; i < result.messages.length; i++) {
        dispatchGuarded(result.messages[i], decoder.sizes[i])
        if (endedWith !== undefined) return
      }
      if (result._tag === "InvalidJson") {
        protocolError("InvalidJson", `${result.detail}: ${result.line}`)
      } else if (result._tag === "TooLong") {
        protocolError(
          "MessageTooLong",
          `a message exceeded ${decoder.maxLineBytes} bytes (maxMessageBytes) after ${result.bytes} bytes`
        )
      }
    }

    yield* Effect.addFinalizer(() =>
      Effect.sync(() => terminate(new QmpDisconnected({ reason: "closed by the client" })))
    )
    yield* transport.start({
      onData,
      onEnd: (end) => terminate(new QmpDisconnected({ reason: end.reason, cause: end.cause }))
    })

    // While a descriptor is being passed, other requests wait: the byte that carries it must not
    // land inside another request, and the command that consumes it must be the next one sent.
    let held: Array<string> | undefined
    const releaseHeld = () => {
      const queued = held
      held = undefined
      if (queued !== undefined) { for (const data of queued) transport.write(data) }
    }
    const write = (data: string, releasesHold = false) => {
      if (held !== undefined && !releasesHold) return void held.push(data)
      transport.write(data)
      if (releasesHold) releaseHeld()
    }
    const fdLock = yield* Effect.makeSemaphore(1)

    const withOperation = <E extends { readonly _tag: string }>(error: E, operation: string): E =>
      error instanceof QmpDisconnected ? new QmpDisconnected({ ...error, operation }) as unknown as E : error

    /**
     * Sends a request and resumes with `onReply` applied to its reply. One `Effect.async` per
     * request, resumed straight from the socket's data callback: this is the hot path.
     */
    const request = <A, E>(
      command: string,
      args: Record<string, unknown> | undefined,
      options: ExecuteOptions | undefined,
      onReply: (response: QmpResponse) => Effect.Effect<A, E>,
      releasesHold = false
    ): Effect.Effect<A, E | QmpTimeout | QmpDisconnected | QmpProtocolError | QmpArgumentError> =>
      Effect.async<A, E | QmpTimeout | QmpDisconnected | QmpProtocolError | QmpArgumentError>((resume) => {
        const operation = `execute ${command}`
        if (endedWith !== undefined) return resume(Effect.fail(withOperation(endedWith, operation)))
        const timeout = requestTimeout(command, options)
        if (timeout instanceof QmpArgumentError) return resume(Effect.fail(timeout))
        const id = nextId
        const payload = args === undefined ? undefined : options?.convertKeys ? convertKeys(args) : args
        const verb = options?.oob ? "exec-oob" : "execute"
        // Serialized before anything is registered: a value that cannot be sent leaves nothing behind.
        // Without arguments there is nothing to check (the hot path of queries).
        const text = payload === undefined
          ? JSON.stringify({ [verb]: String(command), id })
          : ExactJson.stringify({ [verb]: command, arguments: payload, id })
        if (text instanceof ExactJson.NotSerializable) {
          return resume(Effect.fail(
            new QmpArgumentError({
              command,
              reason: "NotSerializable",
              path: text.path,
              detail: text.detail
            })
          ))
        }
        nextId++
        // A plain timer, not `Effect.timeout`: that forks a fiber per request, which cost about as
        // much as the round trip itself. A timer also fires in an uninterruptible region.
        const disarm = Timer.arm(timeout, () => {
          pending.delete(id)
          resume(Effect.fail(new QmpTimeout({ operation, timeout })))
        })
        pending.set(id, {
          reply: (response) => {
            disarm()
            resume(onReply(response))
          },
          fail: (error) => {
            disarm()
            resume(Effect.fail(withOperation(error, operation)))
          }
        })
        write(text + "\n", releasesHold)
        return Effect.sync(() => {
          disarm()
          pending.delete(id)
        })
      })

    const send = (
      command: string,
      args: Record<string, unknown> | undefined,
      options: ExecuteOptions | undefined,
      releasesHold = false
    ): Effect.Effect<QmpResponse, QmpTimeout | QmpDisconnected | QmpProtocolError | QmpArgumentError> =>
      request(command, args, options, Effect.succeed, releasesHold)

    const raw: QmpClient["raw"] = (command, args, options) =>
      send(command, args, options).pipe(
        Effect.map(withoutId),
        withHotSpan(`Qmp.raw ${command}`, { "qmp.command": command, "qmp.name": name })
      )

    const toResult = (command: string, args: Record<string, unknown> | undefined) => (response: QmpResponse) =>
      isFailure(response)
        ? Effect.fail(commandError(command, response, args))
        : Effect.succeed(response.return)

    /** `run` if this QEMU has the command (or cannot tell), else `QmpCommandUnavailable` at once. */
    const onlyIfAvailable = <A, E>(
      command: string,
      run: Effect.Effect<A, E>
    ): Effect.Effect<A, E | QmpCommandUnavailable> => {
      const verdict = catalog?.verdict(command)
      if (verdict === undefined) return run as Effect.Effect<A, E | QmpCommandUnavailable>
      if (verdict !== "lookup") return Effect.fail(verdict)
      return Effect.flatMap(
        catalog!.verdictAfterLookup(command),
        (after): Effect.Effect<A, E | QmpCommandUnavailable> => after === undefined ? run : Effect.fail(after)
      )
    }

    const executeWithFd: QmpClient["executeWithFd"] = (fd, command, args, options) =>
      onlyIfAvailable(command, Effect.void).pipe(Effect.zipRight(Effect.gen(function*() {
        const duplex = transport.duplex
        if (!(duplex instanceof Net.Socket)) {
          return yield* Effect.fail(
            new ScmRightsError({ reason: "InvalidArgument", fd, detail: `${address} cannot carry descriptors` })
          )
        }
        // The command that consumes the descriptor is written right after it, and that write
        // releases the requests held meanwhile (see `write`).
        const response = yield* fdLock.withPermits(1)(Effect.uninterruptibleMask((restore) =>
          Effect.gen(function*() {
            held = []
            yield* restore(ScmRights.sendFd({ socket: duplex, fd }))
            return yield* restore(send(command, args, options, true))
          }).pipe(Effect.ensuring(Effect.sync(releaseHeld)))
        ))
        return yield* toResult(command, args)(response)
      }))).pipe(withHotSpan(`Qmp.execute ${command}`, { "qmp.command": command, "qmp.fd": fd, "qmp.name": name }))

    const execute = (
      command: string,
      args?: Record<string, unknown>,
      options?: ExecuteOptions
    ): Effect.Effect<unknown, QmpExecuteError> => {
      let run: Effect.Effect<unknown, QmpExecuteError> = onlyIfAvailable(
        command,
        request(command, args, options, toResult(command, args))
      )
      // A command missing from the schema is the catalog's to refuse, with its better message.
      if (schemaIndex !== undefined && (catalog === undefined || schemaIndex.commands.has(command))) {
        const checked = checkArgs(schemaIndex, command, args && options?.convertKeys ? convertKeys(args) : args)
        if (checked !== undefined) run = Effect.fail(checked)
      }
      const replySchema = replySchemas?.[command]?.return
      if (replySchema !== undefined) {
        const decode = Schema.decodeUnknownEither(replySchema as Schema.Schema<unknown>)
        run = Effect.flatMap(run, (reply) => {
          // A reply nested deeper than the decoder (or its error formatter) can follow is a
          // mismatch like any other, never a defect.
          try {
            const decoded = decode(reply)
            return Either.isRight(decoded)
              ? Effect.succeed(decoded.right)
              : Effect.fail(new QmpReplyError({ command, detail: safeMessage(decoded.left), reply }))
          } catch (error) {
            return Effect.fail(
              new QmpReplyError({ command, detail: `the reply could not be decoded: ${describeThrown(error)}`, reply })
            )
          }
        })
      }
      // QEMU may exit before its reply to `quit` is read: the connection ending is the success.
      const guarded = command === "quit"
        ? Effect.catchTag(run, "QmpDisconnected", () => Effect.succeed({}))
        : run
      return guarded.pipe(
        withHotSpan(`Qmp.execute ${command}`, { "qmp.command": command, "qmp.name": name })
      )
    }

    const waitFiltered = (
      filters: ReadonlyArray<EventFilter>,
      options: Omit<WaitEventOptions, "match"> | undefined
    ): Effect.Effect<QmpEvent, QmpEventError> => {
      const operation = filters === nextAny ? "next event" : `event ${filters.map((filter) => filter.name).join("|")}`
      return Effect.suspend((): Effect.Effect<QmpEvent, QmpEventError> => {
        if (options?.buffered !== false) {
          const found = mailbox.take((event) => matchSafely(event, filters))
          if (found instanceof QmpMatchError) return Effect.fail(found)
          if (found !== undefined) return Effect.succeed(found)
        }
        if (endedWith !== undefined) return Effect.fail(withOperation(endedWith, operation))
        const waiter: Waiter = { filters, deferred: Deferred.unsafeMake(FiberId.none) }
        waiters.add(waiter)
        return bounded(
          Effect.mapError(Deferred.await(waiter.deferred), (error) => withOperation(error, operation)),
          options?.timeout ?? defaultEventTimeout,
          operation
        ).pipe(Effect.ensuring(Effect.sync(() => waiters.delete(waiter))))
      }).pipe(withHotSpan("Qmp.waitEvent", { "qmp.event": operation, "qmp.name": name }))
    }

    const subscribe: Effect.Effect<EventSubscription, never, Scope.Scope> = Effect.acquireRelease(
      Effect.sync(() => {
        const inbox = new Events.Inbox(bounds)
        if (endedWith !== undefined) inbox.end()
        else subscribers.add(inbox)
        return inbox
      }),
      (inbox) =>
        Effect.sync(() => {
          subscribers.delete(inbox)
          inbox.end()
        })
    ).pipe(Effect.map((inbox) => {
      const take = Effect.mapError(inbox.take, () => endedWith ?? new QmpDisconnected({ reason: "subscription ended" }))
      // Typed by `EventSubscription`; the names and the match are checked there.
      const waitEvent = (
        eventName: string | ReadonlyArray<string>,
        waitOptions?: Omit<WaitEventOptions, "buffered">
      ) => {
        const filters = toFilters(eventName, waitOptions?.match as EventFilter["match"])
        const operation = `event ${filters.map((filter) => filter.name).join("|")}`
        const loop: Effect.Effect<QmpEvent, QmpDisconnected | QmpProtocolError | QmpMatchError> = Effect.flatMap(
          take,
          (event) => {
            const matched = matchSafely(event, filters)
            return matched === true ? Effect.succeed(event) : matched === false ? loop : Effect.fail(matched)
          }
        )
        return bounded(
          Effect.mapError(loop, (error) => withOperation(error, operation)),
          waitOptions?.timeout ?? defaultEventTimeout,
          operation
        )
      }
      const stream = Stream.repeatEffectOption(Effect.mapError(inbox.take, () => Option.none()))
      return { take, waitEvent: waitEvent as EventSubscription["waitEvent"], stream }
    }))

    // The command list, asked for by the catalog when first needed; any failure means "cannot tell".
    const lookupCommands = send("query-commands", undefined, undefined).pipe(
      Effect.map((response) => isFailure(response) ? undefined : commandNames(response.return)),
      Effect.orElseSucceed(() => undefined)
    )
    const sessionScope = yield* Effect.scope

    const greeting = yield* greeted.await(greetingTimeout, () =>
      new QmpConnectError({
        reason: "GreetingTimeout",
        address,
        detail: `no QMP greeting within ${Duration.format(greetingTimeout)}`
      }))

    // Optional checking, set up once the session is ready.
    let schemaIndex: SchemaIndex | undefined
    let catalog: Catalog | undefined
    let replySchemas: Record<string, { readonly return: unknown } | undefined> | undefined

    const wantOob = options.oob === true && greeting.QMP.capabilities.includes("oob")
    const capabilities = wantOob ? ["oob"] : []
    yield* send("qmp_capabilities", wantOob ? { enable: capabilities } : undefined, {
      timeout: greetingTimeout
    }).pipe(
      Effect.flatMap((response) =>
        isFailure(response)
          ? Effect.fail(
            new QmpConnectError({
              reason: "Negotiation",
              address,
              detail: `qmp_capabilities failed: ${response.error.class}: ${response.error.desc}`
            })
          )
          : Effect.void
      ),
      Effect.catchTags({
        QmpTimeout: (error) =>
          Effect.fail(new QmpConnectError({ reason: "Negotiation", address, detail: error.message })),
        QmpDisconnected: (error) =>
          Effect.fail(new QmpConnectError({ reason: "Closed", address, detail: error.message, cause: error })),
        QmpProtocolError: (error) =>
          Effect.fail(new QmpConnectError({ reason: "BadGreeting", address, detail: error.message, cause: error })),
        QmpArgumentError: (error) =>
          Effect.fail(new QmpConnectError({ reason: "Negotiation", address, detail: error.message, cause: error }))
      })
    )

    if (options.checkArgs === true) {
      const schema = yield* send("query-qmp-schema", undefined, {
        timeout: greetingTimeout
      }).pipe(
        Effect.flatMap(toResult("query-qmp-schema", undefined)),
        Effect.mapError((error) =>
          new QmpConnectError({ reason: "Negotiation", address, detail: `checkArgs: ${error.message}`, cause: error })
        )
      )
      schemaIndex = makeIndex(schema as SchemaInfoList)
    }
    if (options.checkCommands !== false) {
      catalog = new Catalog(
        { version: versionOf(greeting), package: greeting.QMP.version.package },
        lookupCommands,
        sessionScope
      )
      if (schemaIndex !== undefined) catalog.prime([...schemaIndex.commands.keys()])
    }
    if (options.decodeReplies === true) {
      // Loaded only when asked for: the generated module is large.
      const generated = yield* Effect.promise(() => import("./generated/qemu.js"))
      replySchemas = generated.QmpSchemas.commands as never
    }

    // Protocol violations and unexpected ends are worth a log line; the caller also gets the error.
    yield* Deferred.await(ended).pipe(
      Effect.flatMap((reason) =>
        reason._tag === "QmpProtocolError"
          ? Effect.logWarning("QMP connection closed on a protocol error", reason.message)
          : Effect.logDebug("QMP connection closed", reason.reason)
      ),
      Effect.annotateLogs({ "qmp.name": name, "qmp.address": address }),
      Effect.forkScoped,
      Effect.interruptible
    )

    const client: QmpClient = {
      name,
      address,
      greeting,
      version: versionOf(greeting),
      capabilities,
      execute: execute as QmpClient["execute"],
      raw,
      executeWithFd,
      waitEvent: (eventName, waitOptions) =>
        waitFiltered(toFilters(eventName, waitOptions?.match as EventFilter["match"]), waitOptions) as never,
      waitEvents: waitFiltered,
      executeAndWait: (command, waitOptions) =>
        Effect.scoped(Effect.gen(function*() {
          const subscription = yield* subscribe
          const args = waitOptions.args as Record<string, unknown> | undefined
          const result = yield* execute(command, args, { timeout: waitOptions.commandTimeout })
          const seen = yield* subscription.waitEvent(untyped(waitOptions.event as string), {
            match: waitOptions.match as EventMatch<UntypedName>,
            timeout: waitOptions.timeout
          })
          // The event was awaited, so it is consumed: a later `waitEvent` must not find it again.
          mailbox.remove(seen)
          return [result, seen] as const
        })) as never,
      subscribe,
      events: Stream.unwrapScoped(Effect.map(subscribe, (subscription) => subscription.stream)),
      takeEvents: Effect.sync(() => mailbox.drain()),
      nextEvent: (nextOptions) => waitFiltered(nextAny, nextOptions),
      nextEvents: (nextOptions) =>
        Effect.map(waitFiltered(nextAny, nextOptions), (first) => [first, ...mailbox.drain()]),
      hmp: (commandLine, hmpOptions) =>
        Effect.map(
          execute("human-monitor-command", {
            "command-line": commandLine,
            ...(hmpOptions?.cpuIndex === undefined ? {} : { "cpu-index": hmpOptions.cpuIndex })
          }, hmpOptions),
          String
        ),
      clearEvents: Effect.sync(() => void mailbox.drain()),
      lastShutdown: Effect.sync(() => Option.fromNullable(lastShutdown as QmpEvent<"SHUTDOWN"> | undefined)),
      isOpen: Effect.sync(() => endedWith === undefined),
      closed: Deferred.await(ended),
      close: Effect.sync(() => terminate(new QmpDisconnected({ reason: "closed by the client" }))),
      duplex: transport.duplex
    }
    return client
  }).pipe(Effect.annotateLogs({ "qmp.address": transport.address }))

/**
 * Connects to a QMP monitor and opens a session: greeting, capability negotiation, then ready.
 * The connection is closed when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Qmp } from "effect-qemu"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const qmp = yield* Qmp.make({ _tag: "Unix", path: "/run/vm/qmp.sock" })
 *   const status = yield* qmp.execute("query-status")
 *   yield* Effect.log(status)
 * }))
 * ```
 */
export const make = (
  address: QmpAddress,
  options: QmpOptions = {}
): Effect.Effect<QmpClient, QmpConnectError, Scope.Scope> => {
  const label = describeAddress(address)
  if (address._tag === "Duplex") {
    return Effect.acquireRelease(
      Effect.succeed(address.duplex),
      (duplex) => Effect.sync(() => duplex.destroy())
    ).pipe(Effect.flatMap((duplex) => makeSession(Transport.fromDuplex(duplex, label), options)))
  }
  return sessionTimeout(label, "greetingTimeout", options.greetingTimeout, defaultGreetingTimeout).pipe(
    Effect.flatMap((timeout) => openNet(address, label, timeout)),
    Effect.flatMap((socket) => makeSession(Transport.fromDuplex(socket, label), options))
  )
}

/**
 * What {@link fromSocket} needs of an `@effect/platform` `Socket`, described by its shape: any
 * `Socket.Socket` fits, and the library does not depend on `@effect/platform` for it.
 *
 * @since 0.2.0
 * @category models
 */
export interface PlatformSocket extends Transport.PlatformSocket {}

/**
 * Opens a session over an `@effect/platform` `Socket` the caller already has.
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromSocket = (
  socket: PlatformSocket,
  options: QmpOptions & { readonly address?: string } = {}
): Effect.Effect<QmpClient, QmpConnectError, Scope.Scope> =>
  makeSession(Transport.fromSocket(socket, options.address ?? "socket"), options)

/**
 * A layer that provides {@link Qmp}, connected to `address` for the layer's lifetime.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (address: QmpAddress, options: QmpOptions = {}): Layer.Layer<Qmp, QmpConnectError> =>
  Layer.scoped(Qmp, make(address, options))
