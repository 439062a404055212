/**
 * The byte pipe under a QMP session. Two kinds: a Node `Duplex` (socketpair end, UNIX or TCP
 * socket; the fast path) and an `@effect/platform` `Socket` (for callers who already hold one).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Net from "node:net"
import type { Duplex } from "node:stream"
import * as Timer from "./timer.js"

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

/**
 * What a session needs of an `@effect/platform` `Socket`, described by its shape so that the core
 * does not depend on `@effect/platform`: any `Socket.Socket` fits.
 */
export interface PlatformSocket {
  readonly writer: Effect.Effect<(chunk: string) => Effect.Effect<void, unknown>, never, Scope.Scope>
  readonly run: (handler: (chunk: Uint8Array) => void) => Effect.Effect<void, unknown>
}

const isSocketClose = (error: unknown): boolean =>
  typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "SocketError" &&
  (error as { reason?: unknown }).reason === "Close"

/** A transport over an `@effect/platform` `Socket`. */
export const fromSocket = (socket: PlatformSocket, address: string): Transport => {
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
                isSocketClose(error)
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

/** Where to connect: a UNIX socket path, or a TCP host and port. */
export type NetAddress = { readonly path: string } | { readonly host: string; readonly port: number }

/** Why a connect failed: a sentence, and the socket's error when there was one. */
export interface ConnectFailure {
  readonly detail: string
  readonly cause?: unknown
}

/**
 * Connects to a UNIX or TCP address within `timeout` (a peer whose accept queue is full leaves a
 * TCP connect pending for minutes). TCP sockets get `setNoDelay`. Interrupting the connect destroys
 * the socket; the caller owns a socket it gets.
 */
export const connectNet = (
  address: NetAddress,
  timeout: Duration.Duration
): Effect.Effect<Net.Socket, ConnectFailure> =>
  Effect.async<Net.Socket, ConnectFailure>((resume) => {
    const socket = "path" in address
      ? Net.createConnection({ path: address.path })
      : Net.createConnection({ host: address.host, port: address.port })
    const fail = (failure: ConnectFailure) => {
      disarm()
      socket.destroy()
      resume(Effect.fail(failure))
    }
    const onError = (cause: Error) => fail({ detail: cause.message, cause })
    const disarm = Timer.arm(timeout, () => fail({ detail: `could not connect within ${Duration.format(timeout)}` }))
    socket.once("error", onError)
    socket.once("connect", () => {
      disarm()
      socket.off("error", onError)
      if (!("path" in address)) socket.setNoDelay(true)
      resume(Effect.succeed(socket))
    })
    return Effect.sync(() => {
      disarm()
      socket.destroy()
    })
  })
