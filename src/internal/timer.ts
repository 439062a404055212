/**
 * Plain timers and timeout values, in one place.
 *
 * The library bounds its waits with plain timers instead of `Effect.timeout` on the hot paths: a
 * timeout fiber per request cost about as much as the round trip it bounded, and a timer also fires
 * inside an uninterruptible region (a finalizer). Node's timers hold at most 2^31-1 ms (about 24.8
 * days); a longer delay fires at once. Like Effect's own clock, a duration longer than that (or an
 * infinite one) is treated as "never": the timer is not armed at all.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"

/** Node's (and Effect's clock's) largest timer delay, in milliseconds. */
export const maxTimerMillis = 2 ** 31 - 1

/**
 * Arms `onFire` after `duration`; returns a function that disarms it. Infinite durations and those
 * beyond {@link maxTimerMillis} never fire. `onFire` is guarded: nothing it throws escapes the
 * timer callback.
 */
export const arm = (duration: Duration.Duration, onFire: () => void): () => void => {
  const millis = Duration.toMillis(duration)
  if (!(millis <= maxTimerMillis)) return noop
  const handle = setTimeout(() => guard(onFire), Math.max(0, millis))
  return () => clearTimeout(handle)
}

const noop = () => {}

/** Runs a callback from Node so that nothing it throws can escape; what it threw is returned. */
export const guard = (f: () => void): unknown => {
  try {
    f()
    return undefined
  } catch (error) {
    return error
  }
}

/**
 * One deadline shared by several waits: `remaining()` is what is left of it, never negative, and
 * infinite when the whole budget is.
 */
export const deadline = (budget: Duration.Duration): { readonly remaining: () => Duration.Duration } => {
  if (!Duration.isFinite(budget)) return { remaining: () => Duration.infinity }
  const end = Date.now() + Duration.toMillis(budget)
  return { remaining: () => Duration.millis(Math.max(0, end - Date.now())) }
}

/**
 * Waits for a callback-driven result under a plain timer. `register` installs the callbacks and
 * returns their removal; `resume` may be called at most once by either side. When the timer fires
 * first, the wait fails with `onTimeout()`.
 */
export const awaitWithin = <A, E, E2>(
  timeout: Duration.Duration,
  register: (resume: (result: Effect.Effect<A, E>) => void) => () => void,
  onTimeout: () => E2
): Effect.Effect<A, E | E2> =>
  Effect.async<A, E | E2>((resume) => {
    let done = false
    let unregister: () => void = noop
    let disarm: () => void = noop
    const finish = (result: Effect.Effect<A, E | E2>) => {
      if (done) return
      done = true
      disarm()
      unregister()
      resume(result)
    }
    unregister = register(finish)
    if (done) {
      unregister()
      return
    }
    disarm = arm(timeout, () => finish(Effect.fail(onTimeout())))
    return Effect.sync(() => {
      done = true
      disarm()
      unregister()
    })
  })

/**
 * Decodes a caller's timeout: a `DurationInput` that is positive (or infinite). Zero, negative
 * and NaN durations, and anything that is not a duration, are refused with a sentence that says
 * what was given and what is expected.
 */
export const decodeTimeout = (input: unknown): Either.Either<Duration.Duration, string> => {
  if (typeof input === "number" && !Number.isFinite(input) && input !== Infinity) {
    return Either.left(`expected a positive duration, got ${String(input)}`)
  }
  if (typeof input === "bigint" && input <= 0n) return Either.left(`expected a positive duration, got ${input}n`)
  if (typeof input === "number" && !(input > 0)) return Either.left(`expected a positive duration, got ${input}`)
  const decoded = Duration.decodeUnknown(input)
  if (Option.isNone(decoded)) {
    return Either.left(`expected a duration such as "30 seconds" or a number of milliseconds, got ${describe(input)}`)
  }
  const duration = decoded.value
  if (duration.value._tag === "Millis" && !(duration.value.millis > 0)) {
    return Either.left(`expected a positive duration, got ${describe(input)}`)
  }
  if (duration.value._tag === "Nanos" && !(duration.value.nanos > 0n)) {
    return Either.left(`expected a positive duration, got ${describe(input)}`)
  }
  return Either.right(duration)
}

/** {@link decodeTimeout} of an optional input: `fallback` when there is none. */
export const decodeTimeoutOr = (
  input: unknown,
  fallback: Duration.Duration
): Either.Either<Duration.Duration, string> => input === undefined ? Either.right(fallback) : decodeTimeout(input)

const describe = (input: unknown): string => {
  if (typeof input === "string") return JSON.stringify(input.length > 40 ? input.slice(0, 40) + "..." : input)
  if (typeof input === "bigint") return `${input}n`
  if (typeof input === "symbol") return "a symbol"
  if (typeof input === "object" && input !== null) return Duration.isDuration(input) ? String(input) : "an object"
  return String(input)
}
