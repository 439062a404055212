/**
 * The QMP protocol over one connection: its run state (awaiting the greeting, running, ended),
 * the requests awaiting their reply by id, the dispatch of every message QEMU sends, and the one
 * place where the session ends. Events go to the {@link EventHub}, writes through the
 * {@link Writer}; `Qmp` builds the public client on top.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberId from "effect/FiberId"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { QmpArgumentError, QmpConnectError, QmpDisconnected, QmpProtocolError, QmpTimeout } from "../../QmpError.js"
import type { QmpEvent, QmpResponse } from "../../QmpMessage.js"
import { QmpGreeting } from "../../QmpMessage.js"
import * as ExactJson from "../exactJson.js"
import { LineDecoder, preview, printable } from "../lineDecoder.js"
import * as Metering from "../metering.js"
import * as Timer from "../timer.js"
import type * as Transport from "../transport.js"
import type { Bounds, Ended } from "./events.js"
import { EventHub, recordSize } from "./events.js"
import { burstLog, describeThrown, isRecord, safeMessage, withOperation } from "./support.js"
import { Writer } from "./writer.js"

/** Where a session is in its life. Messages are read only before `Ended`. */
export type Runstate =
  | { readonly _tag: "AwaitingGreeting" }
  | { readonly _tag: "Running" }
  | { readonly _tag: "Ended"; readonly reason: Ended }

/** What sending a request can fail with, whatever its reply. */
export type RequestError = QmpTimeout | QmpDisconnected | QmpProtocolError | QmpArgumentError

/** One request: the command, its arguments as they go on the wire, and its bound. */
export interface RequestSpec {
  readonly command: string
  readonly args: Record<string, unknown> | undefined
  readonly oob: boolean
  readonly timeout: Duration.Duration
}

/** A request awaiting its reply: resumes its caller with the reply, or with the session's end. */
interface PendingRequest {
  readonly reply: (response: QmpResponse) => void
  readonly fail: (error: Ended) => void
}

/**
 * A result that arrives once, awaited under a bound by a plain timer. Hand-made rather than a
 * `Deferred` awaited under `Effect.timeout`: that forks a fiber to race a sleep, which on the
 * launch path cost more than the wait it bounded.
 */
class OneShot<A, E> {
  private result: Effect.Effect<A, E> | undefined
  private readonly waiters = new Set<(result: Effect.Effect<A, E>) => void>()

  /** Whether the result has arrived. */
  get settled(): boolean {
    return this.result !== undefined
  }

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

const decodeGreeting = Schema.decodeUnknownEither(QmpGreeting)

/** What a session needs besides its transport. */
export interface SessionConfig {
  readonly maxMessageBytes: number
  readonly bounds: Bounds
  /** Logs something worth a warning that happened in a socket callback. */
  readonly diagnose: (text: string) => void
}

/** The protocol state of one QMP connection; see the module's description. */
export class Session {
  runstate: Runstate = { _tag: "AwaitingGreeting" }
  /** Resolved with the reason when the session ends. */
  readonly ended = Deferred.unsafeMake<Ended>(FiberId.none)
  /** Called once with the reason when the session ends (the client's log line). */
  onEnded: ((reason: Ended) => void) | undefined
  readonly events: EventHub
  readonly writer: Writer
  private readonly pending = new Map<number, PendingRequest>()
  private nextId = 1
  private readonly greeted = new OneShot<QmpGreeting, QmpConnectError>()
  private readonly decoder: LineDecoder
  private messageBytes = 0
  private readonly unparsedDropped: (example: string) => void

  constructor(private readonly transport: Transport.Transport, private readonly config: SessionConfig) {
    this.events = new EventHub(config.bounds)
    this.writer = new Writer(transport)
    this.decoder = new LineDecoder(config.maxMessageBytes)
    this.unparsedDropped = burstLog(config.diagnose, "QMP replies without an id (QEMU could not parse some input)")
  }

  /** The Node socket underneath, when there is one (needed to pass file descriptors). */
  get transportDuplex() {
    return this.transport.duplex
  }

  /** Why the session ended, or `undefined` while it runs. */
  get endedWith(): Ended | undefined {
    return this.runstate._tag === "Ended" ? this.runstate.reason : undefined
  }

  /** Starts reading; the session ends (as closed by the client) when the scope closes. */
  readonly start: Effect.Effect<void, never, Scope.Scope> = Effect.zipRight(
    Effect.addFinalizer(() =>
      Effect.sync(() => this.terminate(new QmpDisconnected({ reason: "closed by the client" })))
    ),
    Effect.suspend(() =>
      this.transport.start({
        onData: (chunk) => this.onData(chunk),
        onEnd: (end) => this.terminate(new QmpDisconnected({ reason: end.reason, cause: end.cause }))
      })
    )
  )

  /** QEMU's greeting, or why it did not come within `timeout`. */
  awaitGreeting(
    timeout: Duration.Duration,
    onTimeout: () => QmpConnectError
  ): Effect.Effect<QmpGreeting, QmpConnectError> {
    return this.greeted.await(timeout, onTimeout)
  }

  /** The one place where the session ends: every pending call, waiter and subscriber is told. */
  terminate(reason: Ended): void {
    if (this.runstate._tag === "Ended") return
    this.runstate = { _tag: "Ended", reason }
    for (const request of this.pending.values()) request.fail(reason)
    this.pending.clear()
    this.events.end(reason)
    // Built only for a session that ends before its greeting: nobody waits on it after.
    if (!this.greeted.settled) {
      this.greeted.done(Effect.fail(
        new QmpConnectError({
          reason: reason._tag === "QmpProtocolError" ? "BadGreeting" : "Closed",
          address: this.transport.address,
          detail: reason.message,
          cause: reason
        })
      ))
    }
    Deferred.unsafeDone(this.ended, Effect.succeed(reason))
    const onEnded = this.onEnded
    this.onEnded = undefined
    if (onEnded !== undefined) Timer.guard(() => onEnded(reason))
    this.transport.destroy()
  }

  /**
   * Sends a request and resumes with `onReply` applied to its reply. One `Effect.async` per
   * request, resumed straight from the socket's data callback: this is the hot path. `write` is
   * the writer's, or the one write of an exclusive section.
   */
  request<A, E>(
    spec: RequestSpec,
    onReply: (response: QmpResponse) => Effect.Effect<A, E>,
    write: (data: string) => void = this.writer.write
  ): Effect.Effect<A, E | RequestError> {
    return Effect.async<A, E | RequestError>((resume) => {
      const operation = `execute ${spec.command}`
      const ended = this.endedWith
      if (ended !== undefined) return resume(Effect.fail(withOperation(ended, operation)))
      const id = this.nextId
      const text = serialize(spec, id)
      if (text instanceof QmpArgumentError) return resume(Effect.fail(text))
      this.nextId++
      const sent = performance.now()
      // A plain timer, not `Effect.timeout`: that forks a fiber per request, which cost about as
      // much as the round trip itself. A timer also fires in an uninterruptible region.
      const disarm = Timer.arm(spec.timeout, () => {
        this.pending.delete(id)
        Metering.commandEnded(spec.command, "timeout")
        resume(Effect.fail(new QmpTimeout({ operation, timeout: spec.timeout })))
      })
      this.pending.set(id, {
        reply: (response) => {
          disarm()
          const outcome = "error" in response ? "error" : "ok"
          Metering.commandEnded(spec.command, outcome, (performance.now() - sent) / 1000)
          resume(onReply(response))
        },
        fail: (error) => {
          disarm()
          Metering.commandEnded(spec.command, "disconnected")
          resume(Effect.fail(withOperation(error, operation)))
        }
      })
      write(text + "\n")
      return Effect.sync(() => {
        disarm()
        this.pending.delete(id)
      })
    })
  }

  // The detail quotes the peer's bytes (and JSON.parse's message quotes them again): escaped here, once.
  private protocolError(reason: QmpProtocolError["reason"], detail: string): void {
    this.terminate(new QmpProtocolError({ reason, detail: printable(detail) }))
  }

  private onData(chunk: Uint8Array): void {
    if (this.endedWith !== undefined) return
    const result = this.decoder.push(chunk)
    for (let i = 0; i < result.messages.length; i++) {
      this.dispatchGuarded(result.messages[i], this.decoder.sizes[i])
      // A message may have ended the session: what follows it is not read.
      if (this.endedWith !== undefined) return
    }
    if (result._tag === "InvalidJson") {
      this.protocolError("InvalidJson", `${result.detail}: ${result.line}`)
    } else if (result._tag === "TooLong") {
      this.protocolError(
        "MessageTooLong",
        `a message exceeded ${this.decoder.maxLineBytes} bytes (maxMessageBytes) after ${result.bytes} bytes`
      )
    }
  }

  // Runs from the socket's data callback: nothing a peer sends may throw out of it. What the
  // checks below did not foresee ends the session with a protocol error instead of the process.
  private dispatchGuarded(message: unknown, bytes: number): void {
    this.messageBytes = bytes
    try {
      this.dispatch(message)
    } catch (error) {
      this.protocolError("NotQmp", `a message could not be handled (${describeThrown(error)}): ${preview(message)}`)
    }
  }

  private dispatch(message: unknown): void {
    if (!isRecord(message)) return this.protocolError("NotQmp", `expected a JSON object, got ${preview(message)}`)
    if ("QMP" in message) return this.onGreeting(message)
    if (this.runstate._tag === "AwaitingGreeting") {
      return this.protocolError("NotQmp", `expected the QMP greeting, got ${preview(message)}`)
    }
    if (typeof message.event === "string") return this.onEvent(message, message.event)
    if ("return" in message || (isRecord(message.error) && typeof message.error.class === "string")) {
      return this.onReply(message)
    }
    return this.protocolError("NotQmp", `not a QMP message: ${preview(message)}`)
  }

  private onGreeting(message: Record<string, unknown>): void {
    if (this.runstate._tag !== "AwaitingGreeting") {
      return this.protocolError("UnexpectedGreeting", "a second greeting arrived")
    }
    this.runstate = { _tag: "Running" }
    const decoded = decodeGreeting(message)
    if (Either.isLeft(decoded)) {
      return this.protocolError("NotQmp", `malformed greeting: ${safeMessage(decoded.left).slice(0, 300)}`)
    }
    this.greeted.done(Effect.succeed(decoded.right))
  }

  private onEvent(message: Record<string, unknown>, name: string): void {
    const timestamp = isRecord(message.timestamp) ? message.timestamp : { seconds: 0, microseconds: 0 }
    // Spread first, so that the event keeps its keys in the order QEMU sent them (transcripts print it).
    const event = { ...message, event: name, data: message.data, timestamp } as unknown as QmpEvent
    recordSize(event, this.messageBytes)
    this.events.deliver(event)
  }

  /**
   * A reply without an id is QEMU's answer to input it could not parse. The client never sends
   * such input (requests beyond QEMU's parser limits are refused before sending), and one bad
   * input can draw a thousand such replies (QEMU reads what is left of it as more input), so
   * none of them can be matched to a request: they are dropped, as QMP's spec says, and logged
   * once per burst. So is a reply to an id never issued. An id issued but no longer pending
   * belongs to a call that timed out or was interrupted: its late reply is dropped, never handed
   * to another caller.
   */
  private onReply(message: Record<string, unknown>): void {
    if (!("id" in message)) return this.unparsedDropped(preview(message))
    const id = message.id
    if (typeof id !== "number" || !Number.isInteger(id) || id < 1 || id >= this.nextId) {
      return this.config.diagnose(`dropped a QMP reply to a request never sent: ${preview(message)}`)
    }
    const request = this.pending.get(id)
    if (request === undefined) return
    this.pending.delete(id)
    request.reply(message as unknown as QmpResponse)
  }
}

/**
 * A request's text, serialized before anything is registered: a value that cannot be sent
 * leaves nothing behind. Without arguments there is nothing to check (the hot path of queries).
 */
const serialize = (spec: RequestSpec, id: number): string | QmpArgumentError => {
  const verb = spec.oob ? "exec-oob" : "execute"
  if (spec.args === undefined) return JSON.stringify({ [verb]: String(spec.command), id })
  const text = ExactJson.stringify({ [verb]: spec.command, arguments: spec.args, id })
  return text instanceof ExactJson.NotSerializable
    ? new QmpArgumentError({ command: spec.command, reason: "NotSerializable", path: text.path, detail: text.detail })
    : text
}
