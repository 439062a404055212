/**
 * Where a session's events wait to be taken: the backlog that `waitEvent` searches and each
 * subscriber's inbox. Both are bounded by count and by bytes and drop their oldest events when
 * full; the session is told of every drop so that it can log it.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { QmpArgumentError, QmpProtocolError, QmpTimeout } from "../../QmpError.js"
import { QmpDisconnected, QmpMatchError } from "../../QmpError.js"
import type { EventFilter, QmpEvent } from "../../QmpMessage.js"
import { matchesAny } from "../../QmpMessage.js"
import { bounded, describeThrown, withOperation } from "./support.js"

/** How much a buffer of events may hold. */
export interface Bounds {
  readonly maxEvents: number
  readonly maxBytes: number
  /** Called with each event dropped to make room. */
  readonly onDrop: (event: QmpEvent) => void
}

// The size of each event as it arrived on the wire, recorded once by the session.
const sizes = new WeakMap<QmpEvent, number>()

/** Records the size an event had on the wire (what the byte bounds count). */
export const recordSize = (event: QmpEvent, bytes: number): void => {
  sizes.set(event, bytes)
}

const sizeOf = (event: QmpEvent): number => sizes.get(event) ?? 0

/** A FIFO of events bounded by count and bytes; the oldest go first. */
class BoundedQueue {
  protected items: Array<QmpEvent> = []
  protected bytes = 0
  constructor(protected readonly bounds: Bounds) {}

  protected push(event: QmpEvent): void {
    this.items.push(event)
    this.bytes += sizeOf(event)
    // The newest event always stays, even one larger than the byte bound on its own.
    while (
      this.items.length > 1 && (this.items.length > this.bounds.maxEvents || this.bytes > this.bounds.maxBytes)
    ) {
      const dropped = this.items.shift()!
      this.bytes -= sizeOf(dropped)
      this.bounds.onDrop(dropped)
    }
  }

  protected removeAt(index: number): QmpEvent {
    const [event] = this.items.splice(index, 1)
    this.bytes -= sizeOf(event)
    return event
  }

  /** Every event held, oldest first, and the queue emptied. */
  drain(): Array<QmpEvent> {
    const taken = this.items
    this.items = []
    this.bytes = 0
    return taken
  }
}

/** The events nobody has waited for yet, from which `waitEvent` takes (Python's `events_wait`). */
export class Backlog extends BoundedQueue {
  add(event: QmpEvent): void {
    this.push(event)
  }

  /**
   * Takes the oldest event `test` accepts. `test` returns true, false, or an error that stops the
   * search and is returned as it is.
   */
  take<E>(test: (event: QmpEvent) => boolean | E): QmpEvent | E | undefined {
    for (let index = 0; index < this.items.length; index++) {
      const verdict = test(this.items[index])
      if (verdict === true) return this.removeAt(index)
      if (verdict !== false) return verdict
    }
    return undefined
  }

  /** Removes this very event if it is still held (an event someone awaited another way). */
  remove(event: QmpEvent): void {
    const index = this.items.indexOf(event)
    if (index >= 0) this.removeAt(index)
  }
}

/**
 * A subscriber's queue: single consumer, fed synchronously from the socket's data callback.
 * Hand-made rather than Effect's `Mailbox` or sliding `Queue`: those bound the number of items,
 * and an inbox must also be bounded by bytes (a few huge events are as dangerous as many).
 */
export class Inbox extends BoundedQueue {
  private taker: Deferred.Deferred<QmpEvent, void> | undefined
  private ended = false

  offer(event: QmpEvent): void {
    if (this.ended) return
    if (this.taker !== undefined) {
      Deferred.unsafeDone(this.taker, Effect.succeed(event))
      this.taker = undefined
      return
    }
    this.push(event)
  }

  end(): void {
    this.ended = true
    if (this.taker !== undefined) Deferred.unsafeDone(this.taker, Effect.fail(undefined))
    this.taker = undefined
  }

  /** The next event; fails once the inbox has ended and is empty. */
  readonly take: Effect.Effect<QmpEvent, void> = Effect.suspend(() => {
    if (this.items.length > 0) return Effect.succeed(this.removeAt(0))
    if (this.ended) return Effect.fail(undefined)
    const taker = Deferred.unsafeMake<QmpEvent, void>(FiberId.none)
    this.taker = taker
    return Effect.ensuring(
      Deferred.await(taker),
      Effect.sync(() => {
        if (this.taker === taker) this.taker = undefined
      })
    )
  })
}

/** How a session's event flow ended: its connection closed or broke. */
export type Ended = QmpDisconnected | QmpProtocolError

/** What a wait on the event flow can fail with. */
export type WaitError = Ended | QmpMatchError | QmpTimeout | QmpArgumentError

/** One `waitEvent` in progress: the first matching event resolves it. */
interface Waiter {
  readonly filters: ReadonlyArray<EventFilter>
  readonly deferred: Deferred.Deferred<QmpEvent, Ended | QmpMatchError>
}

/** `matchesAny`, with a caller's predicate that throws turned into that wait's own error. */
const matchSafely = (event: QmpEvent, filters: ReadonlyArray<EventFilter>): boolean | QmpMatchError => {
  try {
    return matchesAny(event, filters)
  } catch (cause) {
    return new QmpMatchError({ event: event.event, detail: describeThrown(cause), cause })
  }
}

/** A subscription as the hub hands it out; `Qmp` gives it its typed face. */
export interface Subscription {
  readonly take: Effect.Effect<QmpEvent, Ended>
  readonly waitEvent: (
    filters: ReadonlyArray<EventFilter>,
    timeout: Duration.DurationInput,
    operation: string
  ) => Effect.Effect<QmpEvent, WaitError>
  readonly stream: Stream.Stream<QmpEvent>
  /** Every event held now, oldest first, without waiting. */
  readonly poll: Effect.Effect<ReadonlyArray<QmpEvent>>
}

/**
 * Where a session's events go: to the waiters whose filters they match (the first takes it),
 * else into the backlog that later waits search; and to every subscriber. When the session ends,
 * every waiter fails with the reason and every subscription ends.
 */
export class EventHub {
  /** The events nobody has waited for yet. */
  readonly backlog: Backlog
  private readonly waiters = new Set<Waiter>()
  private readonly subscribers = new Set<Inbox>()
  private endedWith: Ended | undefined
  /** The last `SHUTDOWN` event, taken or not. */
  lastShutdown: QmpEvent | undefined

  constructor(private readonly bounds: Bounds) {
    this.backlog = new Backlog(bounds)
  }

  /** Hands an event to its waiter, or keeps it; every subscriber gets it too. */
  deliver(event: QmpEvent): void {
    if (event.event === "SHUTDOWN") this.lastShutdown = event
    let taken = false
    for (const waiter of this.waiters) {
      const matched = matchSafely(event, waiter.filters)
      if (matched === false) continue
      this.waiters.delete(waiter)
      Deferred.unsafeDone(waiter.deferred, matched === true ? Effect.succeed(event) : Effect.fail(matched))
      taken = taken || matched === true
    }
    if (!taken) this.backlog.add(event)
    for (const inbox of this.subscribers) inbox.offer(event)
  }

  /** The session ended: every waiter fails with the reason, every subscription ends. */
  end(error: Ended): void {
    this.endedWith = error
    const failure = Effect.fail(error)
    for (const waiter of this.waiters) Deferred.unsafeDone(waiter.deferred, failure)
    this.waiters.clear()
    for (const inbox of this.subscribers) inbox.end()
    this.subscribers.clear()
  }

  /** The first event that matches: from the backlog when `buffered`, else the next to arrive. */
  wait(
    filters: ReadonlyArray<EventFilter>,
    options: { readonly timeout: Duration.DurationInput; readonly buffered: boolean; readonly operation: string }
  ): Effect.Effect<QmpEvent, WaitError> {
    return Effect.suspend((): Effect.Effect<QmpEvent, WaitError> => {
      if (options.buffered) {
        const found = this.backlog.take((event) => matchSafely(event, filters))
        if (found instanceof QmpMatchError) return Effect.fail(found)
        if (found !== undefined) return Effect.succeed(found)
      }
      if (this.endedWith !== undefined) return Effect.fail(withOperation(this.endedWith, options.operation))
      const waiter: Waiter = { filters, deferred: Deferred.unsafeMake(FiberId.none) }
      this.waiters.add(waiter)
      return bounded(
        Effect.mapError(Deferred.await(waiter.deferred), (error) => withOperation(error, options.operation)),
        options.timeout,
        options.operation
      ).pipe(Effect.ensuring(Effect.sync(() => this.waiters.delete(waiter))))
    })
  }

  /** A subscription to every event from now on, ended with its scope or the session. */
  readonly subscribe: Effect.Effect<Subscription, never, Scope.Scope> = Effect.acquireRelease(
    Effect.sync(() => {
      const inbox = new Inbox(this.bounds)
      if (this.endedWith !== undefined) inbox.end()
      else this.subscribers.add(inbox)
      return inbox
    }),
    (inbox) =>
      Effect.sync(() => {
        this.subscribers.delete(inbox)
        inbox.end()
      })
  ).pipe(Effect.map((inbox) => this.subscription(inbox)))

  private subscription(inbox: Inbox): Subscription {
    const take = Effect.mapError(
      inbox.take,
      () => this.endedWith ?? new QmpDisconnected({ reason: "subscription ended" })
    )
    const waitEvent = (filters: ReadonlyArray<EventFilter>, timeout: Duration.DurationInput, operation: string) => {
      const loop: Effect.Effect<QmpEvent, Ended | QmpMatchError> = Effect.flatMap(take, (event) => {
        const matched = matchSafely(event, filters)
        return matched === true ? Effect.succeed(event) : matched === false ? loop : Effect.fail(matched)
      })
      return bounded(Effect.mapError(loop, (error) => withOperation(error, operation)), timeout, operation)
    }
    const stream = Stream.repeatEffectOption(Effect.mapError(inbox.take, () => Option.none()))
    return { take, waitEvent, stream, poll: Effect.sync(() => inbox.drain()) }
  }
}
