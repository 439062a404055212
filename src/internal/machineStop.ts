/**
 * How a machine stops: the state machine behind `shutdown`, `kill`, `wait` and the scope's
 * release. A machine is `Running` until the first stop; then `Stopping` at a level (wait for
 * QEMU to exit < ask it to exit < kill it), which a firmer request raises at once; then `Stopped`
 * with the outcome every caller gets.
 *
 * @internal
 */
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberId from "effect/FiberId"
import * as Option from "effect/Option"
import type { ConsoleService } from "../Console.js"
import type { MachineExit } from "../Machine.js"
import { AbnormalShutdown, formatCommandLine } from "../MachineError.js"
import type { QemuProcessService } from "../QemuProcess.js"
import type { QmpClient } from "../Qmp.js"
import * as Metering from "./metering.js"
import * as Timer from "./timer.js"

/** How firmly a stop ends QEMU, in increasing order. */
export type StopLevel = "Wait" | "Graceful" | "Hard"

const rank: Record<StopLevel, number> = { Wait: 0, Graceful: 1, Hard: 2 }

/** Where a machine is in its stop. */
export type StopState =
  | { readonly _tag: "Running" }
  | { readonly _tag: "Stopping"; readonly level: StopLevel }
  | { readonly _tag: "Stopped"; readonly exit: Exit.Exit<MachineExit, AbnormalShutdown> }

/** The parts of a machine a stop works on. */
export interface StopParts {
  readonly name: string
  readonly process: QemuProcessService
  readonly qmp: QmpClient
  readonly console: ConsoleService
  /** Whether the machine was launched with a QMP monitor. */
  readonly hasQmp: boolean
}

/** The stop state machine of one machine; see the module's description. */
export class Stopper {
  state: StopState = { _tag: "Running" }
  private readonly outcome = Deferred.unsafeMake<MachineExit, AbnormalShutdown>(FiberId.none)
  // How QEMU was asked to end, so that its death by that signal is not reported as a surprise.
  private userKilled = false
  private sentSigterm = false
  // A firmer stop raised the level of the one in progress: that one no longer kills on failure.
  private escalated = false

  constructor(private readonly parts: StopParts) {}

  /** Whether a stop has begun. */
  get started(): boolean {
    return this.state._tag !== "Running"
  }

  /**
   * Stops the machine at `level` within `timeout`, or raises the level of the stop in progress;
   * every caller awaits the one outcome. The stop runs in a fiber of its own: a caller interrupted
   * while waiting stops waiting, but the stop goes on (were it run in the caller's fiber, the
   * interrupt would cut the bounded attempt short and leave the outcome interrupted for the
   * release, which awaits it). The stop is bounded.
   */
  stop(level: StopLevel, timeout: Duration.Duration): Effect.Effect<MachineExit, AbnormalShutdown> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const awaited = restore(Deferred.await(this.outcome))
        const state = this.state
        if (state._tag === "Stopped" || (state._tag === "Stopping" && rank[level] <= rank[state.level])) {
          return awaited
        }
        const first = state._tag === "Running"
        this.state = { _tag: "Stopping", level }
        this.escalated = !first
        const work = first ? this.run(level, timeout) : this.escalate(level, timeout)
        return Effect.zipRight(Effect.forkDaemon(work), awaited)
      })
    )
  }

  /** The first stop: its body, then the channels closed and the outcome told to every caller. */
  private run(level: StopLevel, timeout: Duration.Duration): Effect.Effect<void> {
    const body = level === "Hard" ? this.hardKill : this.graceful(timeout, level === "Graceful")
    return Effect.uninterruptible(
      body.pipe(
        Effect.ensuring(this.finish),
        Effect.zipRight(this.ending),
        Effect.exit,
        Effect.flatMap((exit) => {
          this.state = { _tag: "Stopped", exit }
          const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
          if (Option.isSome(failure)) Metering.abnormalShutdown(failure.value.reason)
          return Deferred.done(this.outcome, exit)
        })
      )
    )
  }

  /** A firmer stop asked for during a softer one goes ahead at once. */
  private escalate(level: StopLevel, timeout: Duration.Duration): Effect.Effect<void> {
    return level === "Hard" ? this.hardKill : this.askThenKill(timeout)
  }

  private readonly hardKill: Effect.Effect<void> = Effect.suspend(() => {
    this.userKilled = true
    return Effect.zipRight(this.parts.console.drain, this.parts.process.kill)
  }).pipe(
    Effect.flatMap((reaped) =>
      Option.isNone(reaped)
        ? Effect.logError(`QEMU process ${this.parts.process.pid} survived SIGKILL`)
        : Effect.void
    )
  )

  /** `quit` over QMP when the monitor is open; without one, SIGTERM asks QEMU just as well. */
  private readonly exitRequest = Effect.suspend(() =>
    Effect.map(this.parts.qmp.isOpen, (open) => this.parts.hasQmp && open ? "quit" as const : "SIGTERM" as const)
  )

  private requestExit(via: "quit" | "SIGTERM", timeout: Duration.Duration) {
    return via === "quit" ? this.parts.qmp.execute("quit", undefined, { timeout }) : Effect.suspend(() => {
      this.sentSigterm = true
      return this.parts.process.signal("SIGTERM")
    })
  }

  /** A graceful stop asked for while the machine only waits for QEMU to exit: ask it now. */
  private askThenKill(timeout: Duration.Duration): Effect.Effect<void> {
    const budget = Timer.deadline(timeout)
    return Effect.ignore(Effect.flatMap(this.exitRequest, (via) => this.requestExit(via, budget.remaining()))).pipe(
      Effect.zipRight(Effect.suspend(() => this.parts.process.waitExit(budget.remaining()))),
      Effect.flatMap((status) => Option.isNone(status) ? this.hardKill : Effect.void)
    )
  }

  /** Waits for QEMU to exit, after asking it to when `ask`; on failure kills it (unless escalated). */
  private graceful(timeout: Duration.Duration, ask: boolean): Effect.Effect<void, AbnormalShutdown> {
    const parts = this.parts
    return Effect.gen(this, function*() {
      if (Option.isSome(yield* parts.process.exitStatus)) return
      // A QEMU blocked writing to a full console socket would never see `quit`; closing the console
      // instead would make QEMU drop what was written to the guest and not yet taken by it.
      yield* parts.console.drain
      const via = ask ? yield* this.exitRequest : undefined
      const result = yield* Effect.either(this.attempt(via, timeout))
      if (Either.isLeft(result) && !this.escalated) {
        yield* this.hardKill
        const status = yield* parts.process.exitStatus
        return yield* Effect.fail(
          new AbnormalShutdown({
            ...result.left,
            exitCode: Option.getOrNull(Option.map(status, (s) => s.code)),
            signal: Option.getOrNull(Option.map(status, (s) => s.signal))
          })
        )
      }
    })
  }

  /**
   * The exit request (if any) and the wait for QEMU's exit, both bounded by plain timers against
   * one deadline (no timeout fibers: this runs for every machine of a fleet).
   */
  private attempt(via: "quit" | "SIGTERM" | undefined, timeout: Duration.Duration) {
    const name = this.parts.name
    const budget = Timer.deadline(timeout)
    const timedOut = () =>
      new AbnormalShutdown({
        name,
        reason: "Timeout",
        detail: `QEMU did not exit within ${Duration.format(timeout)}${via === undefined ? "" : ` of ${via}`}`,
        timeout
      })
    return Effect.gen(this, function*() {
      if (via !== undefined) yield* this.requestExit(via, budget.remaining())
      const status = yield* this.parts.process.waitExit(budget.remaining())
      if (Option.isNone(status)) return yield* Effect.fail(timedOut())
    }).pipe(Effect.mapError((error) =>
      error._tag === "AbnormalShutdown"
        ? error
        : error._tag === "QmpTimeout"
        ? timedOut()
        : new AbnormalShutdown({ name, reason: "QuitFailed", detail: `quit failed: ${error.message}`, cause: error })
    ))
  }

  /** After the process is gone: close the channels, say if QEMU died by a signal nobody sent. */
  private readonly finish: Effect.Effect<void> = Effect.gen(this, function*() {
    const { console, process, qmp } = this.parts
    yield* qmp.close
    // QEMU is gone: keep what it printed last, then close
    yield* console.drainAndClose
    const status = yield* process.exitStatus
    const expected = this.userKilled ||
      (this.sentSigterm && status.pipe(Option.exists((s) => s.signal === "SIGTERM")))
    if (Option.isSome(status) && status.value.signal !== null && !expected) {
      yield* Effect.logWarning(
        `QEMU received signal ${status.value.signal}; command: ${formatCommandLine(process.commandLine)}`
      )
    }
  })

  /** How QEMU ended: its exit status and the `SHUTDOWN` event, if one came. */
  private readonly ending: Effect.Effect<MachineExit> = Effect.gen(this, function*() {
    const status = Option.getOrElse(yield* this.parts.process.exitStatus, () => ({ code: null, signal: null }))
    const event = yield* this.parts.qmp.lastShutdown
    return { status, shutdown: Option.map(event, (e) => e.data), clean: status.code === 0 }
  })
}
