/**
 * The wire under the guest agent client: one JSON request per line, one reply per line, no
 * greeting. Every request carries an `id` that the agent echoes, so a late reply to a request
 * that timed out is told apart and dropped. `guest-sync-delimited` brings the stream back in step:
 * the reader drops everything up to the agent's 0xFF sentinel, the request is preceded by a 0xFF
 * that makes the agent drop any half-read input. 0xFF never occurs in UTF-8 text, so any other
 * sentinel (of an earlier sync's late reply) is dropped wherever it appears.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Duplex } from "node:stream"
import * as ExactJson from "./exactJson.js"
import { LineDecoder } from "./lineDecoder.js"
import * as Timer from "./timer.js"
import * as Transport from "./transport.js"

/** What the agent answered: a return value or an error with QAPI's class and description. */
export type AgentReply =
  | { readonly _tag: "Return"; readonly value: unknown }
  | { readonly _tag: "Error"; readonly errorClass: string; readonly desc: string }

/** Why a request got no reply. */
export type RequestFailure =
  | { readonly _tag: "Closed"; readonly reason: string }
  | { readonly _tag: "Timeout" }
  | { readonly _tag: "Unsendable"; readonly detail: string }

/** One request on the wire. */
export interface AgentChannel {
  /** Sends `command` and waits up to `timeout` for the reply carrying its id. */
  readonly request: (
    command: string,
    args: object | undefined,
    timeout: Duration.Duration,
    options?: { readonly sentinel?: boolean }
  ) => Effect.Effect<AgentReply, RequestFailure>
  /** Why the channel ended, once it has. */
  readonly closedReason: () => string | undefined
}

const SENTINEL = 0xff
const sentinelByte = Buffer.from([SENTINEL])

let nextId = 0

const dropSentinels = (bytes: Uint8Array): Uint8Array =>
  bytes.includes(SENTINEL) ? bytes.filter((byte) => byte !== SENTINEL) : bytes

const toReply = (message: Record<string, unknown>): AgentReply => {
  const error = message.error as { class?: unknown; desc?: unknown } | undefined
  if (typeof error === "object" && error !== null) {
    return { _tag: "Error", errorClass: String(error.class ?? "GenericError"), desc: String(error.desc ?? "") }
  }
  return { _tag: "Return", value: message.return }
}

/**
 * Starts reading `duplex` in the current scope (destroyed when it closes). `maxLineBytes` bounds a
 * reply (a file read of 48 MB comes back as 64 MB of base64).
 */
export const make = (
  duplex: Duplex,
  label: string,
  maxLineBytes: number
): Effect.Effect<AgentChannel, never, Scope.Scope> =>
  Effect.gen(function*() {
    const transport = Transport.fromDuplex(duplex, label)
    const waiters = new Map<string, (result: Effect.Effect<AgentReply, RequestFailure>) => void>()
    let decoder = new LineDecoder(maxLineBytes)
    let discarding = false
    let closed: string | undefined

    const deliver = (message: unknown) => {
      if (typeof message !== "object" || message === null) return
      const id = (message as { id?: unknown }).id
      const waiter = typeof id === "string" ? waiters.get(id) : undefined
      // A reply without a known id is stale (its request timed out) or the agent's answer to a
      // stray 0xFF: dropped.
      if (waiter !== undefined) waiter(Effect.succeed(toReply(message as Record<string, unknown>)))
    }

    const onData = (chunk: Uint8Array) => {
      let bytes = chunk
      if (discarding) {
        const at = bytes.indexOf(SENTINEL)
        if (at === -1) return
        discarding = false
        decoder = new LineDecoder(maxLineBytes)
        bytes = bytes.subarray(at + 1)
      }
      bytes = dropSentinels(bytes)
      // Line by line: a line that is no JSON (or too long) stops the decoder, not the lines after it.
      for (let start = 0; start < bytes.length;) {
        const newline = bytes.indexOf(0x0a, start)
        const end = newline === -1 ? bytes.length : newline + 1
        const result = decoder.push(bytes.subarray(start, end))
        for (const message of result.messages) deliver(message)
        // The request such a line answered times out, and the stream is brought in step again.
        if (result._tag !== "Messages") decoder = new LineDecoder(maxLineBytes)
        start = end
      }
    }

    const onEnd = (end: Transport.TransportEnd) => {
      closed = end.reason
      for (const waiter of [...waiters.values()]) waiter(Effect.fail({ _tag: "Closed", reason: end.reason }))
    }

    // Nothing a peer sends may throw out of a Node callback.
    const handlers = { onData: (chunk: Uint8Array) => void Timer.guard(() => onData(chunk)), onEnd }
    yield* Effect.acquireRelease(transport.start(handlers), () => Effect.sync(transport.destroy))

    const request: AgentChannel["request"] = (command, args, timeout, options) =>
      Effect.suspend(() => {
        if (closed !== undefined) return Effect.fail({ _tag: "Closed" as const, reason: closed })
        const id = `ea${++nextId}`
        const text = ExactJson.stringify(
          args === undefined ? { execute: command, id } : {
            execute: command,
            arguments: args,
            id
          },
          { maxNesting: 1024, maxTokens: Number.MAX_SAFE_INTEGER, maxStringLength: Number.MAX_SAFE_INTEGER }
        )
        if (text instanceof ExactJson.NotSerializable) {
          return Effect.fail({ _tag: "Unsendable" as const, detail: `${text.path}: ${text.detail}` })
        }
        return Timer.awaitWithin<AgentReply, RequestFailure, RequestFailure>(
          timeout,
          (resume) => {
            waiters.set(id, resume)
            if (options?.sentinel === true) discarding = true
            if (!duplex.destroyed && duplex.writable) {
              duplex.write(
                options?.sentinel === true ? Buffer.concat([sentinelByte, Buffer.from(`${text}\n`)]) : `${text}\n`
              )
            }
            return () => waiters.delete(id)
          },
          () => ({ _tag: "Timeout" })
        )
      })

    return { request, closedReason: () => closed }
  })

/** A readable form of a request failure. */
export const describeFailure = (failure: RequestFailure, timeout: Duration.Duration): string =>
  failure._tag === "Closed"
    ? `the channel closed: ${failure.reason}`
    : failure._tag === "Timeout"
    ? `no reply within ${Duration.format(timeout)}`
    : `the arguments cannot be sent: ${failure.detail}`
