/**
 * Small pieces the QMP session's modules share: describing what a peer or a callback threw,
 * bounding a wait, naming the operation an ended session cut short, logging bursts.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { QmpArgumentError, QmpDisconnected, QmpTimeout } from "../../QmpError.js"
import { preview } from "../lineDecoder.js"
import * as Timer from "../timer.js"

/** What a thrown value says, without trusting it to be an `Error`. */
export const describeThrown = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : preview(error, 100)

/** An error's message; a formatter that cannot print a peer's value (too deep) must not throw. */
export const safeMessage = (error: { readonly message: string }): string => {
  try {
    return error.message
  } catch (thrown) {
    return `(the error could not be formatted: ${describeThrown(thrown)})`
  }
}

/** Whether a value is a JSON object. */
export const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/** The session's end as seen by one operation: a disconnection names what it cut short. */
export const withOperation = <E extends { readonly _tag: string }>(error: E, operation: string): E =>
  error instanceof QmpDisconnected ? new QmpDisconnected({ ...error, operation }) as unknown as E : error

/**
 * Bounds a wait by a caller's timeout: a value that is no positive duration is the caller's
 * error, infinity is no bound.
 */
export const bounded = <A, E, R>(
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
 * Logs something that can happen in bursts at most once a second: the first time with an example,
 * later with how many more there were since the last line.
 */
export const burstLog = (log: (text: string) => void, what: string) => {
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
