/**
 * The session's writes to QEMU, in order, and the exclusive section that passes a descriptor:
 * while it is open, every other request waits, because the byte that carries the descriptor must
 * not land inside another request and the command that consumes it must be the next one sent.
 *
 * @internal
 */
import * as Effect from "effect/Effect"

/** Where the text of requests goes. */
export interface Sink {
  write(data: string): void
}

/** Writes requests in order; see {@link Writer.exclusive}. */
export class Writer {
  private held: Array<string> | undefined
  private readonly lock = Effect.unsafeMakeSemaphore(1)

  constructor(private readonly sink: Sink) {}

  /** Writes a request now, or after the exclusive section open at the moment. */
  readonly write = (data: string): void => {
    if (this.held !== undefined) this.held.push(data)
    else this.sink.write(data)
  }

  /**
   * Runs `use` while every other write is held. `use` gets the one write that goes through (the
   * command that consumes the descriptor), which also releases what was held; so does the end of
   * the section, however it ends. One section at a time.
   */
  exclusive<A, E, R>(use: (writeThrough: (data: string) => void) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    const writeThrough = (data: string) => {
      this.sink.write(data)
      this.release()
    }
    return this.lock.withPermits(1)(Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        this.held = []
        return restore(use(writeThrough))
      }).pipe(Effect.ensuring(Effect.sync(() => this.release())))
    ))
  }

  private release(): void {
    const queued = this.held
    this.held = undefined
    if (queued !== undefined) { for (const data of queued) this.sink.write(data) }
  }
}
