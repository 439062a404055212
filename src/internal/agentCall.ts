/**
 * The core every typed command of the guest agent client goes through: one command at a time, in
 * step with the agent (`guest-sync-delimited` before the first command and after a timeout),
 * its reply decoded with a `Schema`.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type { CallOptions } from "../GuestAgent.js"
import {
  GuestAgentArgumentError,
  type GuestAgentCallError,
  GuestAgentProtocolError,
  GuestAgentReplyError,
  GuestAgentTimeout,
  GuestAgentUnavailable
} from "../GuestAgentError.js"
import type * as Channel from "./agentChannel.js"
import * as Timer from "./timer.js"
import { withHotSpan } from "./tracing.js"

/** The core every typed command goes through: one command at a time, in step with the agent. */
export interface AgentCall {
  readonly name: string
  readonly timeout: (
    input: Duration.DurationInput | undefined
  ) => Effect.Effect<Duration.Duration, GuestAgentArgumentError>
  readonly call: <A, I>(
    command: string,
    args: object | undefined,
    schema: Schema.Schema<A, I>,
    options?: CallOptions
  ) => Effect.Effect<A, GuestAgentCallError>
  readonly waitReady: (options?: CallOptions) => Effect.Effect<void, GuestAgentCallError>
  /** A command the agent answers only when it fails: no reply within `replyWait` is success. */
  readonly callWithoutReply: (
    command: string,
    args: object | undefined,
    replyWait: Duration.Duration,
    options?: CallOptions
  ) => Effect.Effect<void, GuestAgentCallError>
}

const syncAttempt = (attempt: number): Duration.Duration => Duration.millis(Math.min(2000, 500 * 2 ** attempt))

/** Sends `guest-sync-delimited` until the agent echoes it, within `budget`. */
const syncWithin = (channel: Channel.AgentChannel, name: string, total: Duration.Duration) =>
  Effect.gen(function*() {
    const budget = Timer.deadline(total)
    for (let attempt = 0;; attempt++) {
      const remaining = budget.remaining()
      if (Duration.toMillis(remaining) <= 0) break
      const id = Math.floor(Math.random() * Number.MAX_SAFE_INTEGER)
      const each = Duration.min(remaining, syncAttempt(attempt))
      const reply = yield* Effect.either(channel.request("guest-sync-delimited", { id }, each, { sentinel: true }))
      if (Either.isRight(reply) && reply.right._tag === "Return" && reply.right.value === id) return
      if (Either.isLeft(reply) && reply.left._tag === "Closed") {
        return yield* new GuestAgentUnavailable({ name, reason: `its channel closed (${reply.left.reason})` })
      }
    }
    return yield* new GuestAgentUnavailable({
      name,
      reason: `no answer to guest-sync-delimited within ${Duration.format(total)} (is qemu-ga running in the guest?)`
    })
  })

const decodeReply = <A, I>(name: string, command: string, schema: Schema.Schema<A, I>, value: unknown) =>
  Schema.decodeUnknown(schema)(value).pipe(
    Effect.mapError((error) =>
      new GuestAgentProtocolError({ name, command, detail: ParseResult.TreeFormatter.formatErrorSync(error) })
    )
  )

/** A reply's value decoded with `schema`, or the agent's error. */
const answer = <A, I>(
  name: string,
  command: string,
  schema: Schema.Schema<A, I>,
  reply: Channel.AgentReply
): Effect.Effect<A, GuestAgentReplyError | GuestAgentProtocolError> =>
  reply._tag === "Error"
    ? Effect.fail(new GuestAgentReplyError({ name, command, errorClass: reply.errorClass, desc: reply.desc }))
    : decodeReply(name, command, schema, reply.value)

export const makeCall = (channel: Channel.AgentChannel, name: string, commandTimeout: Duration.Duration): AgentCall => {
  const lock = Effect.unsafeMakeSemaphore(1)
  let inStep = false
  const timeout = (input: Duration.DurationInput | undefined) =>
    Either.match(Timer.decodeTimeoutOr(input, commandTimeout), {
      onLeft: (detail) => Effect.fail(new GuestAgentArgumentError({ field: "timeout", detail })),
      onRight: Effect.succeed
    })
  const toError = (command: string, total: Duration.Duration) => (failure: Channel.RequestFailure) => {
    if (failure._tag === "Closed") {
      return new GuestAgentUnavailable({ name, reason: `its channel closed (${failure.reason})` })
    }
    if (failure._tag === "Unsendable") {
      return new GuestAgentArgumentError({ field: "arguments", detail: failure.detail })
    }
    inStep = false
    return new GuestAgentTimeout({ name, command, timeout: total })
  }
  /** Sends one command in step with the agent, within `total` (the sync included): its reply. */
  const exchange = (command: string, args: object | undefined, total: Duration.Duration) =>
    lock.withPermits(1)(Effect.gen(function*() {
      const budget = Timer.deadline(total)
      if (!inStep) yield* syncWithin(channel, name, total)
      inStep = true
      return yield* channel.request(command, args, budget.remaining()).pipe(
        Effect.mapError(toError(command, total)),
        Effect.onInterrupt(() => Effect.sync(() => (inStep = false)))
      )
    }))
  const call: AgentCall["call"] = (command, args, schema, options) =>
    Effect.flatMap(
      timeout(options?.timeout),
      (total) => Effect.flatMap(exchange(command, args, total), (reply) => answer(name, command, schema, reply))
    ).pipe(
      withHotSpan("GuestAgent.call", { "guest_agent.command": command, "machine.name": name })
    )
  const waitReady = (options?: CallOptions) =>
    Effect.flatMap(
      timeout(options?.timeout),
      (total) =>
        lock.withPermits(1)(Effect.tap(syncWithin(channel, name, total), () => Effect.sync(() => (inStep = true))))
    )
  const callWithoutReply: AgentCall["callWithoutReply"] = (command, args, replyWait, options) =>
    Effect.flatMap(timeout(options?.timeout), (total) =>
      lock.withPermits(1)(Effect.gen(function*() {
        if (!inStep) yield* syncWithin(channel, name, total)
        // Whatever comes, the stream is no longer known to be in step after this.
        inStep = false
        const reply = yield* Effect.either(channel.request(command, args, replyWait))
        // Silence, or the channel closing as QEMU exits, is how the agent says the command started.
        if (Either.isLeft(reply)) {
          if (reply.left._tag !== "Unsendable") return
          return yield* new GuestAgentArgumentError({ field: "arguments", detail: reply.left.detail })
        }
        if (reply.right._tag === "Error") {
          const { desc, errorClass } = reply.right
          return yield* new GuestAgentReplyError({ name, command, errorClass, desc })
        }
      })))
  return { name, timeout, call, waitReady, callWithoutReply }
}
