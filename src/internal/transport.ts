/**
 * The byte pipe under a QMP session. Two kinds: a Node `Duplex` (socketpair end, UNIX or TCP
 * socket; the fast path) and an `@effect/platform` `Socket` (for callers who already hold one).
 *
 * @internal
 */
import type * as Socket from "@effect/platform/Socket"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import type { Duplex } from "node:stream"

/** Why the pipe ended, as told by the pipe itself. */
export interface TransportEnd {
  readonly reason: string
  readonly cause?: unknown
}

/** Callbacks a session installs on its pipe. Each may be called at most once with `onEnd`. */
export interface TransportHandlers {
  readonly onData: (chunk: Uint8Array) => void
  readonly onEnd: (end: TransportEnd) => void
}

/** A started pipe: write and destroy are synchronous and never throw. */
export interface Transport {
  readonly address: string
  /** The Node socket underneath, when there is one (needed to pass file descriptors). */
  readonly duplex: Duplex | undefined
  readonly start: (handlers: TransportHandlers) => Effect.Effect<void, never, Scope.Scope>
  readonly write: (data: string) => void
  readonly destroy: () => void
}

const describeError = (error: unknown): TransportEnd => {
  const code = (error as { code?: unknown } | null)?.code
  if (code === "ECONNRESET") return { reason: "connection reset by peer", cause: error }
  if (code === "EPIPE") return { reason: "broken pipe", cause: error }
  return { reason: error instanceof Error ? error.message : String(error), cause: error }
}

/** A transport over a Node `Duplex`, e.g. `child.stdio[3]` or a `net.Socket`. */
export const fromDuplex = (duplex: Duplex, address: string): Transport => ({
  address,
  duplex,
  start: (handlers) =>
    Effect.sync(() => {
      let ended = false
      const end = (value: TransportEnd) => {
        if (ended) return
        ended = true
        handlers.onEnd(value)
      }
      duplex.on("data", handlers.onData)
      duplex.on("error", (error) => end(describeError(error)))
      duplex.on("end", () => end({ reason: "peer closed the connection" }))
      duplex.on("close", () => end({ reason: "connection closed" }))
      if (duplex.destroyed) end({ reason: "connection closed" })
    }),
  write: (data) => {
    if (!duplex.destroyed && duplex.writable) duplex.write(data)
  },
  destroy: () => {
    if (!duplex.destroyed) duplex.destroy()
  }
})

/** A transport over an `@effect/platform` `Socket`. */
export const fromSocket = (socket: Socket.Socket, address: string): Transport => {
  let write: ((data: string) => void) | undefined
  let destroy: (() => void) | undefined
  return {
    address,
    duplex: undefined,
    start: (handlers) =>
      Effect.gen(function*() {
        const scope = yield* Effect.scope
        const runtime = yield* Effect.runtime<never>()
        const runFork = Runtime.runFork(runtime)
        const writer = yield* socket.writer
        const reader = yield* socket.run((chunk) => handlers.onData(chunk)).pipe(
          Effect.match({
            onFailure: (error) =>
              handlers.onEnd(
                error._tag === "SocketError" && error.reason === "Close"
                  ? { reason: "peer closed the connection", cause: error }
                  : describeError((error as { cause?: unknown }).cause ?? error)
              ),
            onSuccess: () => handlers.onEnd({ reason: "peer closed the connection" })
          }),
          Effect.forkIn(scope)
        )
        write = (data) => {
          runFork(Effect.ignore(writer(data)))
        }
        destroy = () => {
          runFork(Fiber.interrupt(reader))
        }
      }),
    write: (data) => write?.(data),
    destroy: () => destroy?.()
  }
}
