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
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Net from "node:net"
import type { Duplex } from "node:stream"
import { preview } from "./internal/lineDecoder.js"
import * as Metering from "./internal/metering.js"
import { Catalog, commandNames } from "./internal/qmp/catalog.js"
import type { Ended } from "./internal/qmp/events.js"
import type { RequestError } from "./internal/qmp/session.js"
import { Session } from "./internal/qmp/session.js"
import { burstLog, describeThrown, safeMessage } from "./internal/qmp/support.js"
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
  QmpCommandError,
  QmpConnectError,
  QmpDisconnected,
  QmpReplyError,
  ScmRightsError
} from "./QmpError.js"
import type { QmpCommandUnavailable, QmpEventError, QmpExecuteError, QmpProtocolError, QmpTimeout } from "./QmpError.js"
import type { SchemaIndex, SchemaInfoList } from "./QmpIntrospection.js"
import { makeIndex } from "./QmpIntrospection.js"
import type { EventFilter, QmpEvent, QmpFailure, QmpGreeting, QmpResponse } from "./QmpMessage.js"
import { anyEvent, isFailure } from "./QmpMessage.js"
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
  /**
   * Takes every event the subscription holds now, oldest first, without waiting: after a reply,
   * every event QEMU sent before it is there.
   *
   * @since 0.2.0
   */
  readonly poll: Effect.Effect<ReadonlyArray<QmpEvent>>
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

const defaultGreetingTimeout = Duration.seconds(10)
const defaultCommandTimeout = Duration.seconds(60)
const defaultEventTimeout = Duration.seconds(60)
const defaultMaxMessageBytes = 16 * 1024 * 1024
const defaultEventBufferSize = 1024
const defaultEventBufferBytes = 32 * 1024 * 1024

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

/** A reply as QEMU meant it: without the id the client added to its request. */
const withoutId = (response: QmpResponse): QmpResponse => {
  const { id: _id, ...reply } = response as QmpResponse & { readonly id?: unknown }
  return reply as QmpResponse
}

/** The filter of `nextEvent`: any event. */
const nextAny: ReadonlyArray<EventFilter> = [{ name: anyEvent }]

/** How a wait on events is named in its timeout and disconnection errors. */
const operationOf = (filters: ReadonlyArray<EventFilter>): string =>
  filters === nextAny ? "next event" : `event ${filters.map((filter) => filter.name).join("|")}`

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

/** The optional checks a session sets up at connect (`checkArgs`, `checkCommands`, `decodeReplies`). */
interface Checks {
  readonly schemaIndex: SchemaIndex | undefined
  readonly catalog: Catalog | undefined
  readonly replySchemas: Record<string, { readonly return: unknown } | undefined> | undefined
}

/** What the client's operations share: the session and what was settled at connect. */
interface SessionContext {
  readonly session: Session
  readonly name: string
  readonly address: string
  readonly commandTimeout: Duration.Duration
  readonly greeting: QmpGreeting
  readonly capabilities: ReadonlyArray<string>
  readonly checks: Checks
}

/** The session's parts as options and defaults settle them; reading starts when the scope allows. */
const openSession = (transport: Transport.Transport, options: QmpOptions) =>
  Effect.gen(function*() {
    const address = transport.address
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
    // Things worth a log line that happen in a socket callback, logged with the session's annotations.
    const runtime = yield* Effect.runtime<never>()
    const diagnose = (text: string) => {
      Runtime.runFork(runtime)(Effect.logWarning(text))
    }
    const droppedEvents = burstLog(diagnose, "QMP events nobody took (eventBufferSize / eventBufferBytes)")
    const session = new Session(transport, {
      maxMessageBytes: options.maxMessageBytes ?? defaultMaxMessageBytes,
      bounds: {
        maxEvents: Math.max(1, options.eventBufferSize ?? defaultEventBufferSize),
        maxBytes: Math.max(1, options.eventBufferBytes ?? defaultEventBufferBytes),
        onDrop: (event) => {
          Metering.eventDropped()
          droppedEvents(event.event)
        }
      },
      diagnose
    })
    yield* session.start
    const greeting = yield* session.awaitGreeting(greetingTimeout, () =>
      new QmpConnectError({
        reason: "GreetingTimeout",
        address,
        detail: `no QMP greeting within ${Duration.format(greetingTimeout)}`
      }))
    return { session, commandTimeout, greetingTimeout, greeting }
  })

/** A call's own timeout, or the session's; a value that is no positive duration is the caller's error. */
const requestTimeout = (
  ctx: Pick<SessionContext, "commandTimeout">,
  command: string,
  options: ExecuteOptions | undefined
) => {
  if (options?.timeout === undefined) return ctx.commandTimeout
  const decoded = Timer.decodeTimeout(options.timeout)
  return Either.isRight(decoded)
    ? decoded.right
    : new QmpArgumentError({ command, reason: "InvalidOption", path: "timeout", detail: decoded.left })
}

/** Sends a request through the session and resumes with `onReply` applied to its reply. */
const request = <A, E>(
  ctx: Pick<SessionContext, "session" | "commandTimeout">,
  command: string,
  args: Record<string, unknown> | undefined,
  options: ExecuteOptions | undefined,
  onReply: (response: QmpResponse) => Effect.Effect<A, E>,
  write?: (data: string) => void
): Effect.Effect<A, E | RequestError> => {
  const timeout = requestTimeout(ctx, command, options)
  if (timeout instanceof QmpArgumentError) return Effect.fail(timeout)
  const wire = args === undefined ? undefined : options?.convertKeys ? convertKeys(args) : args
  return ctx.session.request({ command, args: wire, oob: options?.oob === true, timeout }, onReply, write)
}

/** An error reply as `QmpCommandError`, a success as its `return` value. */
const toResult = (command: string, args: Record<string, unknown> | undefined) => (response: QmpResponse) =>
  isFailure(response)
    ? Effect.fail(commandError(command, response, args))
    : Effect.succeed(response.return)

/** Capability negotiation: `oob` when asked for and offered. */
const negotiate = (
  ctx: Pick<SessionContext, "session" | "commandTimeout" | "address">,
  greeting: QmpGreeting,
  options: QmpOptions,
  timeout: Duration.Duration
): Effect.Effect<ReadonlyArray<string>, QmpConnectError> => {
  const address = ctx.address
  const wantOob = options.oob === true && greeting.QMP.capabilities.includes("oob")
  const capabilities = wantOob ? ["oob"] : []
  return request(ctx, "qmp_capabilities", wantOob ? { enable: capabilities } : undefined, { timeout }, Effect.succeed)
    .pipe(
      Effect.flatMap((response) =>
        isFailure(response)
          ? Effect.fail(
            new QmpConnectError({
              reason: "Negotiation",
              address,
              detail: `qmp_capabilities failed: ${response.error.class}: ${response.error.desc}`
            })
          )
          : Effect.succeed(capabilities)
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
}

/** The checks the options ask for: the live schema, the command catalog, the reply Schemas. */
const setUpChecks = (
  ctx: Pick<SessionContext, "session" | "commandTimeout" | "address">,
  greeting: QmpGreeting,
  options: QmpOptions,
  timeout: Duration.Duration
): Effect.Effect<Checks, QmpConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    let schemaIndex: SchemaIndex | undefined
    if (options.checkArgs === true) {
      const schema = yield* request(ctx, "query-qmp-schema", undefined, { timeout }, toResult("query-qmp-schema", {}))
        .pipe(Effect.mapError((error) =>
          new QmpConnectError({
            reason: "Negotiation",
            address: ctx.address,
            detail: `checkArgs: ${error.message}`,
            cause: error
          })
        ))
      schemaIndex = makeIndex(schema as SchemaInfoList)
    }
    let catalog: Catalog | undefined
    if (options.checkCommands !== false) {
      // The command list, asked for when first needed; any failure means "cannot tell".
      const lookup = request(ctx, "query-commands", undefined, undefined, Effect.succeed).pipe(
        Effect.map((response) => isFailure(response) ? undefined : commandNames(response.return)),
        Effect.orElseSucceed(() => undefined)
      )
      const identity = { version: versionOf(greeting), package: greeting.QMP.version.package }
      catalog = new Catalog(identity, lookup, yield* Effect.scope)
      if (schemaIndex !== undefined) catalog.prime([...schemaIndex.commands.keys()])
    }
    let replySchemas: Checks["replySchemas"]
    if (options.decodeReplies === true) {
      // Loaded only when asked for: the generated module is large.
      const generated = yield* Effect.promise(() => import("./generated/qemu.js"))
      replySchemas = generated.QmpSchemas.commands as never
    }
    return { schemaIndex, catalog, replySchemas }
  })

/** `run` if this QEMU has the command (or cannot tell), else `QmpCommandUnavailable` at once. */
const onlyIfAvailable = <A, E>(
  catalog: Catalog | undefined,
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

/** A reply decoded with the command's generated Schema; a mismatch (or one too deep) is `QmpReplyError`. */
const decodeReply = (command: string, replySchema: unknown) => {
  const decode = Schema.decodeUnknownEither(replySchema as Schema.Schema<unknown>)
  return (reply: unknown): Effect.Effect<unknown, QmpReplyError> => {
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
  }
}

/** `execute`: the checks the session set up, the request, the reply's decoding. */
const makeExecute = (ctx: SessionContext) =>
(
  command: string,
  args?: Record<string, unknown>,
  options?: ExecuteOptions
): Effect.Effect<unknown, QmpExecuteError> => {
  const { catalog, replySchemas, schemaIndex } = ctx.checks
  let run: Effect.Effect<unknown, QmpExecuteError> = onlyIfAvailable(
    catalog,
    command,
    request(ctx, command, args, options, toResult(command, args))
  )
  // A command missing from the schema is the catalog's to refuse, with its better message.
  if (schemaIndex !== undefined && (catalog === undefined || schemaIndex.commands.has(command))) {
    const checked = checkArgs(schemaIndex, command, args && options?.convertKeys ? convertKeys(args) : args)
    if (checked !== undefined) run = Effect.fail(checked)
  }
  const replySchema = replySchemas?.[command]?.return
  if (replySchema !== undefined) run = Effect.flatMap(run, decodeReply(command, replySchema))
  // QEMU may exit before its reply to `quit` is read: the connection ending is the success.
  const guarded = command === "quit"
    ? Effect.catchTag(run, "QmpDisconnected", () => Effect.succeed({}))
    : run
  return guarded.pipe(withHotSpan(`Qmp.execute ${command}`, { "qmp.command": command, "qmp.name": ctx.name }))
}

/**
 * `executeWithFd`: the descriptor, then the command that consumes it, in the writer's exclusive
 * section (other requests wait meanwhile).
 */
const makeExecuteWithFd = (ctx: SessionContext): QmpClient["executeWithFd"] => (fd, command, args, options) => {
  const duplex = ctx.session.transportDuplex
  const passAndRun = Effect.suspend(() =>
    duplex instanceof Net.Socket
      ? ctx.session.writer.exclusive((writeThrough) =>
        Effect.zipRight(
          ScmRights.sendFd({ socket: duplex, fd }),
          request(ctx, command, args, options, toResult(command, args), writeThrough)
        )
      )
      : Effect.fail(
        new ScmRightsError({ reason: "InvalidArgument", fd, detail: `${ctx.address} cannot carry descriptors` })
      )
  )
  return onlyIfAvailable(ctx.checks.catalog, command, passAndRun).pipe(
    withHotSpan(`Qmp.execute ${command}`, { "qmp.command": command, "qmp.fd": fd, "qmp.name": ctx.name })
  )
}

/** `waitEvent`/`waitEvents`/`nextEvent`: a wait on the session's event hub. */
const waitOn = (
  ctx: SessionContext,
  filters: ReadonlyArray<EventFilter>,
  options: Omit<WaitEventOptions, "match"> | undefined
): Effect.Effect<QmpEvent, QmpEventError> => {
  const operation = operationOf(filters)
  return ctx.session.events.wait(filters, {
    timeout: options?.timeout ?? defaultEventTimeout,
    buffered: options?.buffered !== false,
    operation
  }).pipe(withHotSpan("Qmp.waitEvent", { "qmp.event": operation, "qmp.name": ctx.name }))
}

/** A subscription with its typed face: names and matches are checked by `EventSubscription`. */
const subscribeTo = (ctx: SessionContext): Effect.Effect<EventSubscription, never, Scope.Scope> =>
  Effect.map(ctx.session.events.subscribe, (subscription) => ({
    take: subscription.take,
    stream: subscription.stream,
    poll: subscription.poll,
    waitEvent: ((name: string | ReadonlyArray<string>, options?: Omit<WaitEventOptions, "buffered">) => {
      const filters = toFilters(name, options?.match as EventFilter["match"])
      return subscription.waitEvent(filters, options?.timeout ?? defaultEventTimeout, operationOf(filters))
    }) as EventSubscription["waitEvent"]
  }))

/** `executeAndWait`: subscribed before the command, so the event cannot be missed, and consumed. */
const makeExecuteAndWait = (
  ctx: SessionContext,
  execute: ReturnType<typeof makeExecute>
): QmpClient["executeAndWait"] =>
  ((command: string, options: ExecuteAndWaitOptions<string, string>) =>
    Effect.scoped(Effect.gen(function*() {
      const subscription = yield* subscribeTo(ctx)
      const args = options.args as Record<string, unknown> | undefined
      const result = yield* execute(command, args, { timeout: options.commandTimeout })
      const seen = yield* subscription.waitEvent(untyped(options.event as string), {
        match: options.match as EventMatch<UntypedName>,
        timeout: options.timeout
      })
      // The event was awaited, so it is consumed: a later `waitEvent` must not find it again.
      ctx.session.events.backlog.remove(seen)
      return [result, seen] as const
    }))) as never

/** The client's event operations. */
const eventOperations = (ctx: SessionContext) => {
  const events = ctx.session.events
  const subscribe = subscribeTo(ctx)
  return {
    waitEvent:
      ((name: string | ReadonlyArray<string>, options?: WaitEventOptions) =>
        waitOn(ctx, toFilters(name, options?.match as EventFilter["match"]), options)) as QmpClient["waitEvent"],
    waitEvents: (filters: ReadonlyArray<EventFilter>, options?: Omit<WaitEventOptions, "match">) =>
      waitOn(ctx, filters, options),
    subscribe,
    events: Stream.unwrapScoped(Effect.map(subscribe, (subscription) => subscription.stream)),
    takeEvents: Effect.sync(() => events.backlog.drain()),
    nextEvent: (options?: NextEventOptions) => waitOn(ctx, nextAny, options),
    nextEvents: (options?: NextEventOptions) =>
      Effect.map(waitOn(ctx, nextAny, options), (first) => [first, ...events.backlog.drain()]),
    clearEvents: Effect.sync(() => void events.backlog.drain()),
    lastShutdown: Effect.sync(() => Option.fromNullable(events.lastShutdown as QmpEvent<"SHUTDOWN"> | undefined))
  }
}

/** The public client over a ready session. */
const makeClient = (ctx: SessionContext): QmpClient => {
  const { session } = ctx
  const execute = makeExecute(ctx)
  return {
    name: ctx.name,
    address: ctx.address,
    greeting: ctx.greeting,
    version: versionOf(ctx.greeting),
    capabilities: ctx.capabilities,
    execute: execute as QmpClient["execute"],
    raw: (command, args, options) =>
      request(ctx, command, args, options, (response) => Effect.succeed(withoutId(response))).pipe(
        withHotSpan(`Qmp.raw ${command}`, { "qmp.command": command, "qmp.name": ctx.name })
      ),
    executeWithFd: makeExecuteWithFd(ctx),
    executeAndWait: makeExecuteAndWait(ctx, execute),
    ...eventOperations(ctx),
    hmp: (commandLine, options) =>
      Effect.map(
        execute("human-monitor-command", {
          "command-line": commandLine,
          ...(options?.cpuIndex === undefined ? {} : { "cpu-index": options.cpuIndex })
        }, options),
        String
      ),
    isOpen: Effect.sync(() => session.endedWith === undefined),
    closed: Deferred.await(session.ended),
    close: Effect.sync(() => session.terminate(new QmpDisconnected({ reason: "closed by the client" }))),
    duplex: session.transportDuplex
  }
}

/**
 * Protocol violations and unexpected ends are worth a log line; the caller also gets the error.
 * A callback on the session's end, not a fiber waiting for it all the session long: that fiber
 * was one per machine of a fleet. A debug line is forked only when debug logs are on. Nothing is
 * logged once the scope is closing (the client closed it).
 */
const logEnd = (session: Session, name: string, address: string) =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const debug = LogLevel.greaterThanEqual(
      LogLevel.Debug,
      FiberRefs.getOrDefault(runtime.fiberRefs, FiberRef.currentMinimumLogLevel)
    )
    const log = (reason: Ended) => {
      const line = reason._tag === "QmpProtocolError"
        ? Effect.logWarning("QMP connection closed on a protocol error", reason.message)
        : debug
        ? Effect.logDebug("QMP connection closed", reason.reason)
        : undefined
      if (line !== undefined) {
        Runtime.runFork(runtime)(line.pipe(Effect.annotateLogs({ "qmp.name": name, "qmp.address": address })))
      }
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => session.onEnded = undefined))
    const ended = session.endedWith
    if (ended !== undefined) log(ended)
    else session.onEnded = log
  })

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
    const { commandTimeout, greeting, greetingTimeout, session } = yield* openSession(transport, options)
    const base = { session, commandTimeout, address }
    const capabilities = yield* negotiate(base, greeting, options, greetingTimeout)
    const checks = yield* setUpChecks(base, greeting, options, greetingTimeout)
    yield* logEnd(session, name, address)
    return makeClient({ ...base, name, greeting, capabilities, checks })
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

/**
 * Reads a monitor address as the command line writes it: `unix:PATH` or `tcp:HOST:PORT` (an IPv6
 * host in brackets, `tcp:[::1]:4444`). The error is a sentence saying what to write instead.
 *
 * @since 0.2.0
 * @category constructors
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Qmp } from "effect-qemu"
 *
 * assert.deepStrictEqual(Qmp.parseAddress("unix:/run/vm/qmp.sock"), Either.right({ _tag: "Unix", path: "/run/vm/qmp.sock" }))
 * assert.deepStrictEqual(Qmp.parseAddress("tcp:127.0.0.1:4444"), Either.right({ _tag: "Tcp", host: "127.0.0.1", port: 4444 }))
 * ```
 */
export const parseAddress = (text: string): Either.Either<QmpAddress, string> => {
  if (text.startsWith("unix:")) {
    const path = text.slice("unix:".length)
    return path.length > 0 ? Either.right({ _tag: "Unix", path }) : Either.left("unix: needs a socket path")
  }
  const tcp = /^tcp:(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(text)
  if (tcp !== null) {
    const port = Number(tcp[3])
    if (port >= 1 && port <= 65535) return Either.right({ _tag: "Tcp", host: tcp[1] ?? tcp[2], port })
    return Either.left(`port ${tcp[3]} is not between 1 and 65535`)
  }
  return Either.left(`${JSON.stringify(text)} is not unix:PATH or tcp:HOST:PORT`)
}

/**
 * What {@link layerConfig} reads: the monitor's address as `unix:PATH` or `tcp:HOST:PORT`, and
 * the session's options.
 *
 * @since 0.2.0
 * @category models
 */
export interface QmpConfigInput {
  readonly address: string
  readonly options?: QmpOptions | undefined
}

/**
 * A layer that provides {@link Qmp} from configuration: each field a value or a `Config`, as
 * Effect's own `layerConfig`s take them (`Config.Wrap`). An address that is neither `unix:PATH`
 * nor `tcp:HOST:PORT` is a `ConfigError` saying what to write.
 *
 * @since 0.2.0
 * @category layers
 * @example
 * ```ts
 * import { Config, Duration } from "effect"
 * import { Qmp } from "effect-qemu"
 *
 * const QmpLive = Qmp.layerConfig({
 *   address: Config.string("QMP_ADDRESS"),
 *   options: { commandTimeout: Config.duration("QMP_TIMEOUT").pipe(Config.withDefault(Duration.seconds(30))) }
 * })
 * ```
 */
export const layerConfig = (
  config: Config.Config.Wrap<QmpConfigInput>
): Layer.Layer<Qmp, QmpConnectError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(
    Config.mapOrFail(Config.unwrap(config), (input) =>
      Either.match(parseAddress(input.address), {
        onLeft: (detail) => Either.left(ConfigError.InvalidData(["address"], detail)),
        onRight: (address) => Either.right({ address, options: input.options ?? {} })
      })),
    ({ address, options }) => layer(address, options)
  ))
