/**
 * Where a session's events wait to be taken: the backlog that `waitEvent` searches and each
 * subscriber's inbox. Both are bounded by count and by bytes and drop their oldest events when
 * full; the session is told of every drop so that it can log it.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import type { QmpEvent } from "../../QmpMessage.js"

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
 * (Effect's sliding `Queue` applies its strategy only to effectful offers.)
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
