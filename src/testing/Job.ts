/**
 * Block and background jobs (`job-*`, `block-job-*`) run to their end, with how they ended:
 * iotests' `run_job`, `cancel_and_wait`, `wait_ready` and `wait_until_completed` in one handle.
 *
 * `start` subscribes to events before it sends the command that creates the job, so no status
 * change is missed; the job's status changes are a `Stream`, and `wait` drives the job through
 * the steps it needs from the caller (finalize when `auto-finalize` is off, dismiss when the job
 * stays concluded, complete when ready if asked), then reports how it ended. A job that failed
 * fails the wait with `JobFailed` and QEMU's error text.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Machine } from "effect-qemu"
 * import { Job } from "effect-qemu/testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults"] })
 *   const outcome = yield* Job.run(vm, "blockdev-create", {
 *     "job-id": "job0",
 *     options: { driver: "file", filename: `${vm.tempDir}/t.img`, size: 1048576 }
 *   })
 *   yield* Effect.log(outcome.ended) // "completed"
 * }))
 * ```
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import type { QmpTarget } from "../internal/qmpTarget.js"
import { clientOf, timeoutOption } from "../internal/qmpTarget.js"
import type { ExecuteOptions, QmpClient } from "../Qmp.js"
import type { CommandName, CommandNameOf, CommandReturn, ExecuteParams, NameInput } from "../QmpCommands.js"
import { untyped } from "../QmpCommands.js"
import type { QmpArgumentError, QmpDisconnected, QmpExecuteError, QmpProtocolError } from "../QmpError.js"
import { QmpCommandError } from "../QmpError.js"
import type { QmpEvent } from "../QmpMessage.js"
import type { Transcript } from "./Transcript.js"

/**
 * A job's status as QEMU reports it (`JobStatus`); `null` is the job gone after being dismissed.
 *
 * @since 0.2.0
 * @category models
 */
export type JobStatus =
  | "undefined"
  | "created"
  | "running"
  | "paused"
  | "ready"
  | "standby"
  | "waiting"
  | "pending"
  | "aborting"
  | "concluded"
  | "null"

/**
 * A job as `query-jobs` lists it.
 *
 * @since 0.2.0
 * @category models
 */
export type JobInfo = CommandReturn<"query-jobs"> extends ReadonlyArray<infer I> ? I : never

/**
 * What is known of a job: its statuses so far, every event that concerns it, and the error QEMU
 * gave when it failed.
 *
 * @since 0.2.0
 * @category models
 */
export interface JobSnapshot {
  readonly id: string
  /** The last status seen; `undefined` before the first `JOB_STATUS_CHANGE`. */
  readonly status: JobStatus
  /** Every status seen, in order. */
  readonly history: ReadonlyArray<JobStatus>
  /** Every event about the job (`JOB_STATUS_CHANGE`, `BLOCK_JOB_*`), in order. */
  readonly events: ReadonlyArray<QmpEvent>
  /** QEMU's error text, once known (`BLOCK_JOB_COMPLETED`'s `error`, or `query-jobs`). */
  readonly error: string | undefined
  /** Set when the QMP connection ended while the job was watched. */
  readonly closed: QmpDisconnected | QmpProtocolError | undefined
}

/**
 * How a job ended: `completed`, or `cancelled` (QEMU sent `BLOCK_JOB_CANCELLED`, or the job was
 * cancelled through this handle). A cancelled mirror or active commit that was ready ends
 * `completed`, as QEMU reports it (`BLOCK_JOB_COMPLETED`).
 *
 * @since 0.2.0
 * @category models
 */
export interface JobOutcome {
  readonly id: string
  readonly ended: "completed" | "cancelled"
  readonly history: ReadonlyArray<JobStatus>
  readonly events: ReadonlyArray<QmpEvent>
  /** `BLOCK_JOB_COMPLETED` or `BLOCK_JOB_CANCELLED`, for block jobs. */
  readonly finalEvent: Option.Option<QmpEvent>
}

/**
 * A job that ended with an error, with QEMU's text for it.
 *
 * @since 0.2.0
 * @category errors
 */
export class JobFailed extends Data.TaggedError("JobFailed")<{
  readonly id: string
  readonly error: string
  readonly history: ReadonlyArray<JobStatus>
  readonly events: ReadonlyArray<QmpEvent>
}> {
  get message(): string {
    return `job ${this.id} failed: ${this.error}`
  }
}

/**
 * A wait on a job that did not see what it waited for within its timeout.
 *
 * @since 0.2.0
 * @category errors
 */
export class JobTimeout extends Data.TaggedError("JobTimeout")<{
  readonly id: string
  readonly waitingFor: string
  readonly status: JobStatus
  readonly timeout: Duration.Duration
}> {
  get message(): string {
    return `job ${this.id}: no ${this.waitingFor} within ${Duration.format(this.timeout)} (status: ${this.status})`
  }
}

/**
 * A wait for a status that the job can no longer reach: it ended (or the connection did) first.
 *
 * @since 0.2.0
 * @category errors
 */
export class JobEnded extends Data.TaggedError("JobEnded")<{
  readonly id: string
  readonly waitingFor: string
  readonly history: ReadonlyArray<JobStatus>
  readonly error: string | undefined
}> {
  get message(): string {
    const why = this.error === undefined ? "" : `: ${this.error}`
    return `job ${this.id} ended (${this.history.join(" -> ")}) before ${this.waitingFor}${why}`
  }
}

/**
 * Everything waiting on a job can fail with.
 *
 * @since 0.2.0
 * @category errors
 */
export type JobError = JobFailed | JobTimeout | JobEnded | QmpExecuteError

/**
 * Options of `start`: the command's own options, plus a transcript that logs the command and the
 * steps the handle takes (as iotests' `run_job` logs them).
 *
 * @since 0.2.0
 * @category models
 */
export interface StartOptions extends ExecuteOptions {
  readonly transcript?: Transcript | undefined
  /**
   * The id the job will have, for commands whose arguments do not name it (a `transaction`);
   * the command is then sent as it is.
   */
  readonly id?: string | undefined
}

/**
 * Options of `wait` and of the operations that end with one.
 *
 * @since 0.2.0
 * @category models
 */
export interface WaitOptions {
  /** How long the job may take to end. Default: 60 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Send `job-complete` when the job becomes ready (iotests' `run_job` does). Default: false. */
  readonly completeWhenReady?: boolean | undefined
  /** At `pending` (with `auto-finalize` off), runs before the job is finalized. */
  readonly beforeFinalize?: Effect.Effect<void> | undefined
  /** At `pending` (with `auto-finalize` off), cancel instead of finalizing. Default: false. */
  readonly cancelWhenPending?: boolean | undefined
}

/**
 * A running job, watched from before it was created.
 *
 * @since 0.2.0
 * @category models
 */
export interface Job {
  readonly id: string
  /** What is known of the job now. */
  readonly snapshot: Effect.Effect<JobSnapshot>
  /** Every status from the first, ending after `null` (or when the connection ends). */
  readonly statuses: Stream.Stream<JobStatus>
  /** Waits until the job is in one of `statuses`; fails with `JobEnded` if it ends first. */
  readonly waitFor: (
    status: JobStatus | ReadonlyArray<JobStatus>,
    options?: { readonly timeout?: Duration.DurationInput | undefined }
  ) => Effect.Effect<JobSnapshot, JobTimeout | JobEnded | QmpArgumentError>
  /** Waits for `ready` and its `BLOCK_JOB_READY` event (iotests' `wait_ready`). */
  readonly waitReady: (
    options?: { readonly timeout?: Duration.DurationInput | undefined }
  ) => Effect.Effect<JobSnapshot, JobTimeout | JobEnded | QmpArgumentError>
  /** Takes the job to its end (see `WaitOptions`) and reports how it ended. */
  readonly wait: (options?: WaitOptions) => Effect.Effect<JobOutcome, JobError>
  /** Waits for `ready`, sends `job-complete`, then waits for the end. */
  readonly complete: (options?: WaitOptions) => Effect.Effect<JobOutcome, JobError>
  /**
   * Cancels and waits for the end (iotests' `cancel_and_wait`). `force: false` uses
   * `block-job-cancel`, which lets a ready mirror end as completed; the default `job-cancel`
   * cancels whatever the status.
   */
  readonly cancel: (
    options?: WaitOptions & { readonly force?: boolean | undefined }
  ) => Effect.Effect<JobOutcome, JobError>
  readonly pause: Effect.Effect<void, QmpExecuteError>
  readonly resume: Effect.Effect<void, QmpExecuteError>
  readonly finalize: Effect.Effect<void, QmpExecuteError>
  readonly dismiss: Effect.Effect<void, QmpExecuteError>
  /** `block-job-set-speed`, in bytes per second (0: unlimited). */
  readonly setSpeed: (speed: number) => Effect.Effect<void, QmpExecuteError>
  /** The job's entry in `query-jobs`, if it is still listed. */
  readonly info: Effect.Effect<Option.Option<JobInfo>, QmpExecuteError>
}

const initial = (id: string): JobSnapshot => ({
  id,
  status: "undefined",
  history: [],
  events: [],
  error: undefined,
  closed: undefined
})

const concerns = (event: QmpEvent, id: string): boolean => {
  const data = event.data as { readonly id?: unknown; readonly device?: unknown } | undefined
  if (event.event === "JOB_STATUS_CHANGE" || event.event === "BLOCK_JOB_PENDING") return data?.id === id
  return event.event.startsWith("BLOCK_JOB_") && data?.device === id
}

const apply = (snapshot: JobSnapshot, event: QmpEvent): JobSnapshot => {
  const data = event.data as { readonly status?: JobStatus; readonly error?: string }
  const events = [...snapshot.events, event]
  if (event.event === "JOB_STATUS_CHANGE" && data.status !== undefined) {
    return { ...snapshot, events, status: data.status, history: [...snapshot.history, data.status] }
  }
  const error = event.event === "BLOCK_JOB_COMPLETED" && typeof data.error === "string" ? data.error : snapshot.error
  return { ...snapshot, events, error }
}

/** Feeds the job's events into its snapshot until the job is gone or the connection ends. */
const watch = (
  take: Effect.Effect<QmpEvent, QmpDisconnected | QmpProtocolError>,
  ref: SubscriptionRef.SubscriptionRef<JobSnapshot>,
  id: string
): Effect.Effect<void> => {
  const step: Effect.Effect<void, QmpDisconnected | QmpProtocolError> = Effect.flatMap(
    take,
    (event) =>
      !concerns(event, id)
        ? step
        : Effect.flatMap(
          SubscriptionRef.updateAndGet(ref, (s) => apply(s, event)),
          (s) => s.status === "null" ? Effect.void : step
        )
  )
  return Effect.catchAll(step, (closed) => SubscriptionRef.update(ref, (s) => ({ ...s, closed })))
}

/** The job id the command will use: its `job-id`, else its `device` (QEMU's default). */
const jobIdOf = (args: Record<string, unknown> | undefined): string | undefined => {
  const id = args?.["job-id"] ?? args?.device
  return typeof id === "string" ? id : undefined
}

let generated = 0

/**
 * Sends the command that creates a job (`blockdev-create`, `block-commit`, `drive-backup`,
 * `drive-mirror`, `block-stream`, ...) and returns a handle on the job, watched from before the
 * command was sent. The job's id is `options.id`, else the `job-id` argument, else `device`
 * (QEMU's default); with none of them a `job-id` is added. The watch ends with the scope.
 *
 * @since 0.2.0
 * @category constructors
 */
export const start = <K extends NameInput<CommandName>>(
  target: QmpTarget,
  command: CommandNameOf<K>,
  ...params: ExecuteParams<K, StartOptions>
): Effect.Effect<Job, QmpExecuteError, Scope.Scope> =>
  Effect.gen(function*() {
    const qmp = clientOf(target)
    const [given, options] = params as [Record<string, unknown> | undefined, StartOptions | undefined]
    const named = options?.id ?? jobIdOf(given)
    const id = named ?? `job${++generated}`
    const args = named === undefined ? { ...given, "job-id": id } : given
    const subscription = yield* qmp.subscribe
    const ref = yield* SubscriptionRef.make(initial(id))
    yield* Effect.forkScoped(watch(subscription.take, ref, id))
    const { id: _id, transcript, ...executeOptions } = options ?? {}
    yield* sendLogged(qmp, transcript, command, args, executeOptions)
    return makeHandle(qmp, ref, id, transcript)
  })

/**
 * Starts a job and takes it to its end (iotests' `run_job`): finalizes it when `auto-finalize`
 * is off, dismisses it when it stays concluded and, unless `completeWhenReady: false`, completes
 * it when ready. Fails with `JobFailed` if it ended with an error.
 *
 * @since 0.2.0
 * @category combinators
 */
export const run = <K extends NameInput<CommandName>>(
  target: QmpTarget,
  command: CommandNameOf<K>,
  ...params: ExecuteParams<K, StartOptions & WaitOptions>
): Effect.Effect<JobOutcome, JobError> =>
  Effect.scoped(Effect.gen(function*() {
    const [args, options] = params as [unknown, (StartOptions & WaitOptions) | undefined]
    const startParams = [args, options] as unknown as ExecuteParams<K, StartOptions>
    const job = yield* start<K>(target, command, ...startParams)
    return yield* job.wait({ completeWhenReady: true, ...options })
  }))

/** Runs a command, through the transcript when there is one. */
const sendLogged = (
  qmp: QmpClient,
  transcript: Transcript | undefined,
  command: string,
  args: Record<string, unknown> | undefined,
  options?: ExecuteOptions
): Effect.Effect<unknown, QmpExecuteError> =>
  transcript === undefined
    ? qmp.execute(untyped(command), args, options)
    : Effect.flatMap(transcript.execute(command, args, options), (reply) =>
      "error" in reply
        ? Effect.fail(
          new QmpCommandError({ command, errorClass: reply.error.class, desc: reply.error.desc, args })
        )
        : Effect.succeed(reply.return))

const makeHandle = (
  qmp: QmpClient,
  ref: SubscriptionRef.SubscriptionRef<JobSnapshot>,
  id: string,
  transcript: Transcript | undefined
): Job => {
  const send = (command: string, args: Record<string, unknown>) =>
    Effect.asVoid(sendLogged(qmp, transcript, command, args))
  const driver = new Driver(qmp, ref, id, transcript, send)
  const waitFor: Job["waitFor"] = (status, options) => untilStatus(ref, id, status, options?.timeout)
  const cancel: Job["cancel"] = (options) =>
    Effect.zipRight(
      Effect.suspend(() => {
        driver.cancelRequested = true
        return options?.force === false
          ? send("block-job-cancel", { device: id, force: false })
          : send("job-cancel", { id })
      }),
      driver.wait(options)
    )
  return {
    id,
    snapshot: SubscriptionRef.get(ref),
    statuses: statusStream(ref),
    waitFor,
    // Only block jobs get ready; QEMU sends BLOCK_JOB_READY right after the status change.
    waitReady: (options) => untilStatus(ref, id, "ready", options?.timeout, hasReadyEvent),
    wait: (options) => driver.wait(options),
    complete: (options) =>
      waitFor("ready", options).pipe(
        Effect.zipRight(send("job-complete", { id })),
        Effect.zipRight(driver.wait(options))
      ),
    cancel,
    pause: send("job-pause", { id }),
    resume: send("job-resume", { id }),
    finalize: send("job-finalize", { id }),
    dismiss: send("job-dismiss", { id }),
    setSpeed: (speed) => send("block-job-set-speed", { device: id, speed }),
    info: Effect.map(qmp.execute("query-jobs"), (jobs) => Option.fromNullable(jobs.find((job) => job.id === id)))
  }
}

const statusStream = (ref: SubscriptionRef.SubscriptionRef<JobSnapshot>): Stream.Stream<JobStatus> =>
  ref.changes.pipe(
    Stream.takeUntil((s) => s.status === "null" || s.closed !== undefined),
    Stream.mapAccum(0, (seen, s) => [s.history.length, s.history.slice(seen)] as const),
    Stream.flattenIterables
  )

const hasReadyEvent = (s: JobSnapshot) => s.events.some((event) => event.event === "BLOCK_JOB_READY")

const ended = (s: JobSnapshot) => s.status === "null" || s.closed !== undefined

const untilStatus = (
  ref: SubscriptionRef.SubscriptionRef<JobSnapshot>,
  id: string,
  status: JobStatus | ReadonlyArray<JobStatus>,
  timeout: Duration.DurationInput | undefined,
  also: (s: JobSnapshot) => boolean = () => true
): Effect.Effect<JobSnapshot, JobTimeout | JobEnded | QmpArgumentError> => {
  const wanted: ReadonlyArray<JobStatus> = typeof status === "string" ? [status] : status
  const waitingFor = wanted.join(" or ")
  const reached = (s: JobSnapshot) => wanted.includes(s.status) && also(s)
  const wait = ref.changes.pipe(
    Stream.filter((s) => reached(s) || ended(s) || s.status === "concluded"),
    Stream.runHead,
    Effect.map(Option.getOrThrow),
    Effect.flatMap((s) =>
      reached(s)
        ? Effect.succeed(s)
        : Effect.fail(new JobEnded({ id, waitingFor, history: s.history, error: s.error }))
    )
  )
  return bounded(wait, ref, id, waitingFor, timeout)
}

/** Bounds a wait on the job; the `JobTimeout` says which status the job was left in. */
const bounded = <A, E>(
  wait: Effect.Effect<A, E>,
  ref: SubscriptionRef.SubscriptionRef<JobSnapshot>,
  id: string,
  waitingFor: string,
  timeout: Duration.DurationInput | undefined
): Effect.Effect<A, E | JobTimeout | QmpArgumentError> =>
  Effect.flatMap(timeoutOption(`job ${id}: wait for ${waitingFor}`, timeout), (budget) =>
    Effect.flatMap(
      Effect.timeoutOption(wait, budget),
      Option.match({
        onSome: (value) => Effect.succeed(value),
        onNone: () =>
          Effect.flatMap(
            SubscriptionRef.get(ref),
            (s) => Effect.fail(new JobTimeout({ id, waitingFor, status: s.status, timeout: budget }))
          )
      })
    ))

/**
 * Takes a job through the steps it needs from the caller, each once and only while the job is
 * still in the status that asks for it.
 */
class Driver {
  cancelRequested = false
  private readonly handled = new Set<number>()
  constructor(
    private readonly qmp: QmpClient,
    private readonly ref: SubscriptionRef.SubscriptionRef<JobSnapshot>,
    private readonly id: string,
    private readonly transcript: Transcript | undefined,
    private readonly send: (command: string, args: Record<string, unknown>) => Effect.Effect<void, QmpExecuteError>
  ) {}

  wait(options: WaitOptions | undefined): Effect.Effect<JobOutcome, JobError> {
    const loop = (seen: number): Effect.Effect<JobOutcome, JobError> =>
      this.ref.changes.pipe(
        Stream.filter((s) => s.history.length > seen || s.closed !== undefined),
        Stream.runHead,
        Effect.map(Option.getOrThrow),
        Effect.flatMap((s) =>
          Effect.zipRight(
            this.react(s, seen, options),
            ended(s) ? this.outcome : Effect.suspend(() => loop(s.history.length))
          )
        )
      )
    return bounded(loop(0), this.ref, this.id, "the end", options?.timeout)
  }

  /** Acts on the statuses from `seen` on; only the current one can still ask for a step. */
  private react(s: JobSnapshot, seen: number, options: WaitOptions | undefined): Effect.Effect<void, QmpExecuteError> {
    return Effect.forEach(s.history.slice(seen), (status, offset) => {
      const index = seen + offset
      if (this.handled.has(index)) return Effect.void
      this.handled.add(index)
      const current = index === s.history.length - 1
      const event = s.events.filter((e) => e.event === "JOB_STATUS_CHANGE")[index]
      if (status === "aborting" || status === "concluded") {
        return this.recordError(event, status === "concluded" && current)
      }
      if (!current) return Effect.void
      if (status === "ready" && options?.completeWhenReady === true && !this.cancelRequested) {
        return this.send("job-complete", { id: this.id })
      }
      if (status === "pending") return this.atPending(options)
      return Effect.void
    }, { discard: true })
  }

  private atPending(options: WaitOptions | undefined): Effect.Effect<void, QmpExecuteError> {
    return Effect.flatMap(this.listed, (info) => {
      if (Option.isNone(info) || info.value.status !== "pending") return Effect.void
      const step = options?.cancelWhenPending === true
        ? Effect.suspend(() => (this.cancelRequested = true, this.send("job-cancel", { id: this.id })))
        : this.send("job-finalize", { id: this.id })
      return Effect.zipRight(options?.beforeFinalize ?? Effect.void, step)
    })
  }

  private get listed(): Effect.Effect<Option.Option<JobInfo>, QmpExecuteError> {
    return Effect.map(this.qmp.execute("query-jobs"), (jobs) => Option.fromNullable(jobs.find((j) => j.id === this.id)))
  }

  /** Reads the job's error while it is listed, logs it, and dismisses a concluded job. */
  private recordError(event: QmpEvent | undefined, dismiss: boolean): Effect.Effect<void, QmpExecuteError> {
    return Effect.flatMap(this.listed, (info) => {
      if (Option.isNone(info)) return Effect.void
      const error = info.value.error
      const note = error === undefined || this.alreadyKnown(error) ? Effect.void : this.noteError(error, event)
      const step = dismiss && info.value.status === "concluded"
        ? this.send("job-dismiss", { id: this.id })
        : Effect.void
      return Effect.zipRight(note, step)
    })
  }

  private known: string | undefined
  private alreadyKnown(error: string): boolean {
    const known = this.known === error
    this.known = error
    return known
  }

  private noteError(error: string, event: QmpEvent | undefined): Effect.Effect<void> {
    const log = this.transcript?.log(`Job failed: ${error}`, { after: event }) ?? Effect.void
    return Effect.zipRight(SubscriptionRef.update(this.ref, (s) => ({ ...s, error: s.error ?? error })), log)
  }

  private get outcome(): Effect.Effect<JobOutcome, JobFailed | QmpDisconnected | QmpProtocolError> {
    return Effect.flatMap(
      SubscriptionRef.get(this.ref),
      (s): Effect.Effect<JobOutcome, JobFailed | QmpDisconnected | QmpProtocolError> => {
        if (s.closed !== undefined) return Effect.fail(s.closed)
        const finalEvent = Option.fromNullable(
          [...s.events].reverse().find((e) => e.event === "BLOCK_JOB_COMPLETED" || e.event === "BLOCK_JOB_CANCELLED")
        )
        const cancelled = Option.exists(finalEvent, (e) => e.event === "BLOCK_JOB_CANCELLED") ||
          (this.cancelRequested && s.history.includes("aborting"))
        if (!cancelled && (s.error !== undefined || s.history.includes("aborting"))) {
          const error = s.error ?? "the job aborted (it was dismissed before its error could be read)"
          return Effect.fail(new JobFailed({ id: this.id, error, history: s.history, events: s.events }))
        }
        const base = { id: this.id, history: s.history, events: s.events, finalEvent }
        return Effect.succeed({ ...base, ended: cancelled ? "cancelled" as const : "completed" as const })
      }
    )
  }
}
