/**
 * Wait strategies: what "ready" means for a machine, as small values that compose, instead of
 * polling loops. A console pattern, a QMP event, the guest agent answering, a forwarded port the
 * guest answers on, a command in the guest that succeeds; `all` and `any` of them, under one
 * deadline. Give one to the
 * machine's config (`waitFor`) and the machine is handed over only once it is met, or run one with
 * {@link until} at any time. When a strategy is not met, {@link WaitError} says which part was not
 * and why, with the recent console output.
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { dual } from "effect/Function"
import type { Pipeable } from "effect/Pipeable"
import { pipeArguments } from "effect/Pipeable"
import type { ConsoleService, WaitForSince } from "./Console.js"
import type { GuestAgentService } from "./GuestAgent.js"
import { printable } from "./internal/lineDecoder.js"
import { probePort } from "./internal/portProbe.js"
import { decodeTimeout } from "./internal/timer.js"
import type { QmpClient } from "./Qmp.js"
import type { EventMatch, EventName, EventNameOf, NameInput } from "./QmpCommands.js"
import * as Shell from "./Shell.js"

/**
 * What a strategy waits on: a machine (a `MachineService` is one), or anything with its console,
 * QMP client, guest agent and forwarded ports.
 *
 * @since 0.2.0
 * @category models
 */
export interface WaitTarget {
  /** A name for errors and spans. */
  readonly name: string
  readonly console: ConsoleService
  readonly qmp: QmpClient
  /** The guest agent client (`GuestAgent.unavailable(...)` for a target without one). */
  readonly guestAgent: GuestAgentService
  /** The host port of each forwarded guest TCP port (`Machine.ports`). */
  readonly ports: ReadonlyMap<number, number>
}

/**
 * A part of a strategy that was not met: which one, why, and whether its time ran out (as opposed
 * to failing for good, e.g. a `failOn` pattern matched or the console closed).
 *
 * @since 0.2.0
 * @category models
 */
export interface Unmet {
  readonly strategy: string
  readonly reason: string
  readonly timedOut: boolean
}

/**
 * One deadline shared by every part of a strategy.
 *
 * @since 0.2.0
 * @category models
 */
export interface Deadline {
  /** The whole budget, for messages. */
  readonly budget: Duration.Duration
  /** What is left of it. */
  readonly remaining: () => Duration.Duration
}

const TypeId: unique symbol = Symbol.for("effect-qemu/Wait/Strategy")

/**
 * A wait strategy: a value that says what "ready" means. Build one with the `for*` constructors,
 * {@link all}, {@link any}, {@link withTimeout}, or {@link make} for a check of your own.
 *
 * @since 0.2.0
 * @category models
 */
export interface Strategy extends Pipeable {
  readonly [TypeId]: typeof TypeId
  /** What it waits for, e.g. `console "login:"` or `all of (port 22, event "RESUME")`. */
  readonly description: string
  /** Its own time bound, set by {@link withTimeout}; `until` uses it when given none. */
  readonly timeout: Duration.DurationInput | undefined
  /**
   * The first bad input of the strategy or of its parts (a port out of range, a bad interval or
   * timeout, an `any` of nothing), found when it was built: `until` fails with it at once, and a
   * machine's config refuses it before launching.
   */
  readonly invalid: Unmet | undefined
  /** Waits until met within `deadline`, or fails with what was not met. */
  readonly run: (target: WaitTarget, deadline: Deadline) => Effect.Effect<void, ReadonlyArray<Unmet>>
}

/**
 * Whether a value is a {@link Strategy}.
 *
 * @since 0.2.0
 * @category guards
 */
export const isStrategy = (u: unknown): u is Strategy => typeof u === "object" && u !== null && TypeId in u

const strategy = (
  fields: Omit<Strategy, typeof TypeId | "pipe" | "timeout" | "invalid"> & {
    readonly timeout?: Duration.DurationInput
    readonly invalid?: Unmet | undefined
  }
) =>
  ({
    [TypeId]: TypeId,
    timeout: undefined,
    invalid: undefined,
    ...fields,
    pipe() {
      // Effect's own pipeable values pass `arguments` on as it is
      // eslint-disable-next-line prefer-rest-params
      return pipeArguments(this, arguments)
    }
  }) as Strategy

/** A strategy built from bad input: never met, it fails at once saying what to give instead. */
const refused = (description: string, reason: string): Strategy => {
  const invalid: Unmet = { strategy: description, reason, timedOut: false }
  return strategy({ description, invalid, run: () => Effect.fail([invalid]) })
}

/** The first bad input among `strategies`. */
const firstInvalid = (strategies: ReadonlyArray<Strategy>): Unmet | undefined =>
  strategies.find((s) => s.invalid !== undefined)?.invalid

/** A pause between tries: `fallback` when not given. */
const decodeInterval = (input: Duration.DurationInput | undefined, fallback: Duration.DurationInput) =>
  Either.mapLeft(decodeTimeout(input ?? fallback), (sentence) => `interval: ${sentence}`)

/**
 * What a check of {@link make} gets besides the target: what is left of the deadline, and `note`,
 * to record what it saw last (shown when the deadline passes, e.g. "exit code 1").
 *
 * @since 0.2.0
 * @category models
 */
export interface CheckContext {
  readonly remaining: () => Duration.Duration
  readonly note: (seen: string) => void
}

/**
 * A strategy from a check of your own: an effect that succeeds once the condition holds (waiting
 * or retrying as it needs) and fails with a sentence when it can never hold. The deadline
 * interrupts it; its last `note` says what it saw.
 *
 * @since 0.2.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { Wait } from "effect-qemu"
 *
 * const running = Wait.make("vCPUs running", (vm) =>
 *   vm.qmp.execute("query-status").pipe(
 *     Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: (status) => status.running }),
 *     Effect.asVoid,
 *     Effect.mapError((error) => error.message)
 *   ))
 * ```
 */
export const make = (
  description: string,
  check: (target: WaitTarget, context: CheckContext) => Effect.Effect<void, string>
): Strategy =>
  strategy({
    description,
    run: (target, deadline) =>
      Effect.suspend(() => {
        let seen: string | undefined
        const context: CheckContext = { remaining: deadline.remaining, note: (text) => void (seen = text) }
        const unmet = (reason: string, timedOut: boolean): ReadonlyArray<Unmet> => [
          { strategy: description, reason, timedOut }
        ]
        return check(target, context).pipe(
          Effect.mapError((reason) => unmet(reason, false)),
          Effect.timeoutFail({
            duration: deadline.remaining(),
            onTimeout: () =>
              unmet(
                `not met within ${Duration.format(deadline.budget)}${seen === undefined ? "" : `; last: ${seen}`}`,
                true
              )
          })
        )
      })
  })

const describePattern = (pattern: string | RegExp): string =>
  typeof pattern === "string" ? JSON.stringify(pattern) : String(pattern)

/**
 * Options of {@link forConsole}: `failOn` patterns that fail the wait at once (e.g.
 * `["Kernel panic"]`), and where to start looking (default `"cursor"`: from the console's main
 * cursor; see `Console.WaitForSince`).
 *
 * @since 0.2.0
 * @category models
 */
export interface ForConsoleOptions {
  readonly failOn?: ReadonlyArray<string | RegExp>
  readonly since?: WaitForSince
}

/**
 * Met when the console output matches `pattern`. It reads with a cursor of its own: the console's
 * main cursor does not move, so a `waitFor` after it still sees the same output.
 *
 * @since 0.2.0
 * @category constructors
 */
export const forConsole = (pattern: string | RegExp, options: ForConsoleOptions = {}): Strategy => {
  const isPattern = (u: unknown) => (typeof u === "string" && u.length > 0) || u instanceof RegExp
  if (!isPattern(pattern)) return refused(`console ${String(pattern)}`, "expected a non-empty string or a RegExp")
  const description = `console ${describePattern(pattern)}`
  if (options.failOn !== undefined && !(Array.isArray(options.failOn) && options.failOn.every(isPattern))) {
    return refused(description, "failOn: expected a list of non-empty strings or RegExps")
  }
  return make(
    description,
    (target) =>
      target.console.reader(options.since === undefined ? undefined : { since: options.since }).pipe(
        Effect.flatMap((reader) =>
          reader.waitFor(pattern, { timeout: Duration.infinity, ...(options.failOn ? { failOn: options.failOn } : {}) })
        ),
        Effect.asVoid,
        Effect.mapError((error) =>
          error._tag === "ConsoleFailureMatched"
            ? `the console matched ${printable(error.failure)} (${printable(JSON.stringify(error.matched))})`
            : error._tag === "ConsoleClosed"
            ? "the console closed"
            : error.message
        )
      )
  )
}

/**
 * Options of {@link forEvent}: a `match` on the event (typed against it) and whether an event
 * received before the wait (still in the mailbox) counts (`buffered`, default true).
 *
 * @since 0.2.0
 * @category models
 */
export interface ForEventOptions<K extends string> {
  readonly match?: EventMatch<K>
  readonly buffered?: boolean
}

/**
 * Met when QEMU sends the event (or any of several), matching `match` when given. The event is
 * taken from the mailbox, as `Qmp.waitEvent` takes it.
 *
 * @since 0.2.0
 * @category constructors
 * @example
 * ```ts
 * import { Wait } from "effect-qemu"
 *
 * const poweredOff = Wait.forEvent("SHUTDOWN", { match: { data: { guest: true } } })
 * ```
 */
export const forEvent = <K extends NameInput<EventName>>(
  name: EventNameOf<K> | ReadonlyArray<EventNameOf<K>>,
  options: ForEventOptions<K> = {}
): Strategy => {
  const names = (Array.isArray(name) ? name : [name]).map(String)
  return make(
    `event ${names.join("|")}`,
    (target) =>
      target.qmp.waitEvent(name, { ...options, timeout: Duration.infinity }).pipe(
        Effect.asVoid,
        Effect.mapError((error) => error.message)
      )
  )
}

/**
 * Met when the guest agent answers: `GuestAgent.waitReady`, tried until the deadline. The machine
 * needs `guestAgent: true` and a guest that starts qemu-ga; a machine without the agent's channel,
 * or whose channel closed (QEMU exited), fails at once.
 *
 * @since 0.2.0
 * @category constructors
 * @example
 * ```ts
 * import { Wait } from "effect-qemu"
 *
 * const ready = Wait.all([Wait.forAgent(), Wait.forConsole("login:")]).pipe(Wait.withTimeout("2 minutes"))
 * ```
 */
export const forAgent = (): Strategy =>
  make("guest agent", (target, context) => {
    context.note("qemu-ga has not answered guest-sync-delimited yet")
    // The deadline interrupts the wait; the agent's own bound comes a little later, so that running
    // out of time reads as the deadline (not met yet) rather than the agent failing for good.
    const timeout = Duration.sum(context.remaining(), Duration.seconds(1))
    return target.guestAgent.waitReady({ timeout }).pipe(Effect.mapError((error) => error.message))
  })

/**
 * Options of {@link forPort}: how long to wait between two tries; default 200 milliseconds.
 *
 * @since 0.2.0
 * @category models
 */
export interface ForPortOptions {
  readonly interval?: Duration.DurationInput
}

/**
 * Met when a server in the guest accepts a TCP connection on `guestPort`, through its forward on
 * the host (the machine's `ports` must hold it). QEMU's user networking accepts every connection
 * on the host side at once, whether or not anything listens in the guest, so a bare connect says
 * nothing: each try connects and then watches QEMU's own view of that connection (`info usernet`)
 * until the guest completes the handshake (or sends data, or closes it cleanly). A guest that
 * refuses (nothing listening) or does not answer (network down) is tried again.
 *
 * @since 0.2.0
 * @category constructors
 */
export const forPort = (guestPort: number, options: ForPortOptions = {}): Strategy => {
  const description = `port ${String(guestPort)}`
  if (!(Number.isInteger(guestPort) && guestPort >= 1 && guestPort <= 65535)) {
    return refused(description, "expected a guest TCP port, an integer from 1 to 65535")
  }
  const interval = decodeInterval(options.interval, "200 millis")
  if (Either.isLeft(interval)) return refused(description, interval.left)
  return make(description, (target, context) => {
    const hostPort = target.ports.get(guestPort)
    if (hostPort === undefined) {
      const forwarded = [...target.ports.keys()].join(", ") || "none"
      return Effect.fail(`guest port ${guestPort} is not forwarded (forwarded: ${forwarded}); add it to ports`)
    }
    const attempt: Effect.Effect<void, string> = probePort(target.qmp, guestPort, hostPort).pipe(
      Effect.flatMap((outcome) =>
        outcome === "accepted"
          ? Effect.void
          : Effect.zipRight(
            Effect.sync(() => context.note(outcome)),
            Effect.zipRight(Effect.sleep(interval.right), attempt)
          )
      )
    )
    return attempt
  })
}

/**
 * Options of {@link forCommand}: how long to wait between two tries (default 1 second), and the
 * options of each run (see `Shell.ShellOptions`).
 *
 * @since 0.2.0
 * @category models
 */
export interface ForCommandOptions {
  readonly interval?: Duration.DurationInput
  readonly shell?: Shell.ShellOptions
}

/**
 * Met when `command`, run on the shell the console reaches, exits with 0; tried again after each
 * other exit code. The shell must be at its prompt (logged in). It reads the console with a cursor
 * of its own, so the main cursor does not move. A command cut short by the deadline is
 * interrupted with Ctrl-C.
 *
 * @since 0.2.0
 * @category constructors
 */
export const forCommand = (command: string, options: ForCommandOptions = {}): Strategy => {
  if (typeof command !== "string" || command.trim() === "") {
    return refused(`command ${String(command)}`, "expected a shell command line")
  }
  const description = `command ${JSON.stringify(command)}`
  const interval = decodeInterval(options.interval, "1 second")
  if (Either.isLeft(interval)) return refused(description, interval.left)
  return make(description, (target, context) =>
    Effect.gen(function*() {
      const reader = yield* target.console.reader()
      const shell = Shell.fromConsole({ ...target.console, waitFor: reader.waitFor }, options.shell)
      while (true) {
        const result = yield* shell.run(command, { timeout: context.remaining() }).pipe(
          Effect.onInterrupt(() => Effect.ignore(shell.interrupt))
        )
        if (result.exitCode === 0) return
        context.note(`exit code ${result.exitCode}${result.stdout === "" ? "" : `: ${lastLine(result.stdout)}`}`)
        yield* Effect.sleep(interval.right)
      }
    }).pipe(Effect.mapError((error) => error.message)))
}

const lastLine = (text: string): string => printable(text.trimEnd().split("\n").pop() ?? "")

/**
 * Met when every strategy is met; they are waited for at once, under the same deadline. One that
 * fails for good fails the whole at once; at the deadline, every one not met yet is reported.
 *
 * @since 0.2.0
 * @category combinators
 */
export const all = (strategies: ReadonlyArray<Strategy>): Strategy =>
  strategy({
    description: `all of (${strategies.map((s) => s.description).join(", ")})`,
    invalid: firstInvalid(strategies),
    run: (target, deadline) =>
      Effect.forEach(strategies, (s) =>
        s.run(target, deadline).pipe(
          Effect.as([] as ReadonlyArray<Unmet>),
          // out of time: keep waiting for the others, to report them all; failed for good: stop now
          Effect.catchAll((unmet) => unmet.some((u) => u.timedOut) ? Effect.succeed(unmet) : Effect.fail(unmet))
        ), { concurrency: "unbounded" }).pipe(
          Effect.flatMap((results) => {
            const unmet = results.flat()
            return unmet.length === 0 ? Effect.void : Effect.fail(unmet)
          })
        )
  })

/**
 * Met as soon as one of the strategies is met (the others are stopped); not met when none is by
 * the deadline, or every one failed for good.
 *
 * @since 0.2.0
 * @category combinators
 */
export const any = (strategies: ReadonlyArray<Strategy>): Strategy => {
  if (strategies.length === 0) return refused("any of ()", "no strategy to meet; give at least one")
  return strategy({
    description: `any of (${strategies.map((s) => s.description).join(", ")})`,
    invalid: firstInvalid(strategies),
    run: (target, deadline) =>
      Effect.suspend(() => {
        // what each part did not meet, in the order given, whatever order they fail in
        const unmet: Array<ReadonlyArray<Unmet>> = strategies.map(() => [])
        const parts = strategies.map((s, index) =>
          Effect.tapError(s.run(target, deadline), (u) => Effect.sync(() => void (unmet[index] = u)))
        )
        return Effect.mapError(Effect.raceAll(parts), () => unmet.flat())
      })
  })
}

/**
 * Bounds a strategy by `timeout`: within an `all` or `any`, that part gives up sooner than the
 * whole; at the top, it is the deadline `until` (and the machine's `waitFor`) uses.
 *
 * @since 0.2.0
 * @category combinators
 * @example
 * ```ts
 * import { Wait } from "effect-qemu"
 *
 * const ready = Wait.all([Wait.forConsole("login:"), Wait.forPort(22)]).pipe(Wait.withTimeout("2 minutes"))
 * ```
 */
export const withTimeout: {
  (timeout: Duration.DurationInput): (self: Strategy) => Strategy
  (self: Strategy, timeout: Duration.DurationInput): Strategy
} = dual(2, (self: Strategy, timeout: Duration.DurationInput): Strategy => {
  const decoded = decodeTimeout(timeout)
  if (Either.isLeft(decoded)) return refused(self.description, `timeout: ${decoded.left}`)
  return strategy({
    description: self.description,
    timeout,
    invalid: self.invalid,
    run: (target, deadline) => {
      const own = deadlineOf(decoded.right)
      const sooner = Duration.lessThanOrEqualTo(own.remaining(), deadline.remaining()) ? own : deadline
      return self.run(target, sooner)
    }
  })
})

const deadlineOf = (budget: Duration.Duration): Deadline => {
  if (!Duration.isFinite(budget)) return { budget, remaining: () => Duration.infinity }
  const end = Date.now() + Duration.toMillis(budget)
  return { budget, remaining: () => Duration.millis(Math.max(0, end - Date.now())) }
}

/** How much console output a {@link WaitError} keeps. */
const recentChars = 4096
const recentLines = 20

/**
 * A strategy was not met: `unmet` says which parts and why, `recent` is the console's recent output.
 *
 * @since 0.2.0
 * @category errors
 */
export class WaitError extends Data.TaggedError("WaitError")<{
  /** The machine's (the target's) name. */
  readonly name: string
  /** The whole strategy's description. */
  readonly strategy: string
  readonly unmet: ReadonlyArray<Unmet>
  /** The deadline of the wait. */
  readonly timeout: Duration.Duration
  /** The tail of the console output when the wait failed. */
  readonly recent: string
}> {
  /**
   * @since 0.2.0
   */
  override get message(): string {
    const parts = this.unmet.map((u) => `  - ${u.strategy}: ${u.reason}`).join("\n")
    const lines = this.recent.split("\n").map((line) => line.replace(/\r+$/, ""))
    while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop()
    const tail = lines.length === 0
      ? "  (no console output)"
      : lines.slice(-recentLines).map((line) => `  | ${printable(line)}`).join("\n")
    return `machine "${this.name}" did not get ready (${this.strategy}, within ${
      Duration.format(this.timeout)
    }); not met:\n${parts}\nrecent console output:\n${tail}`
  }
}

/** The deadline `until` uses when neither its options nor the strategy give one. */
const defaultTimeout = Duration.seconds(60)

/**
 * Waits until `strategy` is met on `target` (a machine), within `timeout` (default: the strategy's
 * own from {@link withTimeout}, else 60 seconds), or fails with {@link WaitError}.
 *
 * @since 0.2.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Machine, Wait } from "effect-qemu"
 *
 * const program = Effect.gen(function*() {
 *   const vm = yield* Machine.make({ args: ["-kernel", "bzImage"], console: {}, ports: [22] })
 *   yield* Wait.until(vm, Wait.any([Wait.forPort(22), Wait.forConsole("Kernel panic")]), { timeout: "2 minutes" })
 * }).pipe(Effect.scoped)
 * ```
 */
export const until = (
  target: WaitTarget,
  strategy: Strategy,
  options: { readonly timeout?: Duration.DurationInput } = {}
): Effect.Effect<void, WaitError> =>
  Effect.suspend(() => {
    const input = options.timeout ?? strategy.timeout
    const timeout = input === undefined ? Either.right(defaultTimeout) : decodeTimeout(input)
    const decoded = Either.getOrElse(timeout, () => Duration.zero)
    const fail = (unmet: ReadonlyArray<Unmet>) =>
      Effect.flatMap(target.console.recent, (recent) =>
        Effect.fail(
          new WaitError({
            name: target.name,
            strategy: strategy.description,
            unmet,
            timeout: decoded,
            recent: recent.slice(-recentChars)
          })
        ))
    if (Either.isLeft(timeout)) {
      return fail([{ strategy: strategy.description, reason: `timeout: ${timeout.left}`, timedOut: false }])
    }
    if (strategy.invalid !== undefined) return fail([strategy.invalid])
    return strategy.run(target, deadlineOf(decoded)).pipe(
      Effect.catchAll(fail),
      Effect.withSpan("Wait.until", {
        attributes: { "wait.strategy": strategy.description, "machine.name": target.name }
      })
    )
  })
