/**
 * Live migration from one machine to another, both in the caller's scope: the destination runs
 * with `-incoming defer`; `migrate` enables the `events` capability on both sides, starts the
 * incoming side, then the outgoing one, and waits for the end on both sides through `MIGRATION`
 * events. A failure fails with `MigrationFailed` and QEMU's reason (`query-migrate`'s
 * `error-desc`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Machine } from "effect-qemu"
 * import { Migration } from "effect-qemu/testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const source = yield* Machine.make({ args: ["-M", "none", "-nodefaults", "-m", "16M"] })
 *   const destination = yield* Machine.make({
 *     args: ["-M", "none", "-nodefaults", "-m", "16M", "-incoming", "defer"]
 *   })
 *   const result = yield* Migration.migrate(source, destination, { transport: "unix" })
 *   yield* Effect.log(result.source.statuses) // ends with "completed"
 * }))
 * ```
 *
 * @since 0.2.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs/promises"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import type { QmpTarget } from "../internal/qmpTarget.js"
import { clientOf, timeoutOption } from "../internal/qmpTarget.js"
import type { EventSubscription, FdError, QmpClient } from "../Qmp.js"
import type { QmpDisconnected, QmpExecuteError, QmpProtocolError } from "../QmpError.js"
import { QmpArgumentError } from "../QmpError.js"

/**
 * How the migration stream travels: a UNIX socket (`unix:`), a socket pair handed to both QEMUs
 * as descriptors (`fd:`), or a file written then read back (`exec:cat`, which every QEMU has).
 *
 * @since 0.2.0
 * @category models
 */
export type Transport = "unix" | "fd" | "file"

/**
 * Options of `start` and `migrate`.
 *
 * @since 0.2.0
 * @category models
 */
export interface MigrateOptions {
  /** Default: `unix`. */
  readonly transport?: Transport | undefined
  /** How long each side may take to finish. Default: 60 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
  /** More capabilities to enable on both sides (`events` always is). */
  readonly capabilities?: ReadonlyArray<string> | undefined
  /** Parameters for the source (`migrate-set-parameters`), e.g. `{ "max-bandwidth": 1024 }`. */
  readonly parameters?: Record<string, unknown> | undefined
}

/**
 * What one side went through: every `MIGRATION` status, in order.
 *
 * @since 0.2.0
 * @category models
 */
export interface SideResult {
  readonly statuses: ReadonlyArray<string>
}

/**
 * How a migration ended on both sides, and the source's final `query-migrate`.
 *
 * @since 0.2.0
 * @category models
 */
export interface MigrationResult {
  readonly source: SideResult
  readonly destination: SideResult
  readonly info: unknown
}

/**
 * A migration that ended `failed` on one side, with QEMU's reason when it gave one.
 *
 * @since 0.2.0
 * @category errors
 */
export class MigrationFailed extends Data.TaggedError("MigrationFailed")<{
  readonly side: "source" | "destination"
  readonly status: string
  readonly error: string | undefined
  readonly statuses: ReadonlyArray<string>
}> {
  get message(): string {
    return `migration ${this.status} on the ${this.side}${this.error === undefined ? "" : `: ${this.error}`}`
  }
}

/**
 * A side that did not reach the end of the migration within the timeout.
 *
 * @since 0.2.0
 * @category errors
 */
export class MigrationTimeout extends Data.TaggedError("MigrationTimeout")<{
  readonly side: "source" | "destination"
  readonly statuses: ReadonlyArray<string>
  readonly timeout: Duration.Duration
}> {
  get message(): string {
    const last = this.statuses.at(-1) ?? "no MIGRATION event"
    return `migration did not end on the ${this.side} within ${Duration.format(this.timeout)} (last: ${last})`
  }
}

/**
 * Everything a migration can fail with.
 *
 * @since 0.2.0
 * @category errors
 */
export type MigrationError = MigrationFailed | MigrationTimeout | QmpExecuteError

/**
 * A migration under way.
 *
 * @since 0.2.0
 * @category models
 */
export interface Migration {
  /** The URI both sides were given. */
  readonly uri: string
  /** Waits for the end on both sides. */
  readonly wait: Effect.Effect<MigrationResult, MigrationError>
  /**
   * Cancels (`migrate_cancel`) and waits for the source to say `cancelled`; the destination,
   * whose incoming stream breaks, fails its migration (and QEMU then exits).
   */
  readonly cancel: Effect.Effect<SideResult, MigrationError>
}

const terminal = new Set(["completed", "failed", "cancelled"])

/** Collects a side's MIGRATION statuses until a terminal one. */
const watchSide = (
  subscription: EventSubscription,
  side: "source" | "destination",
  timeout: Duration.Duration
): Effect.Effect<Array<string>, MigrationTimeout | QmpDisconnected | QmpProtocolError> => {
  const statuses: Array<string> = []
  const next: Effect.Effect<Array<string>, QmpDisconnected | QmpProtocolError> = Effect.flatMap(
    subscription.take,
    (event) => {
      const status = (event.data as { readonly status?: unknown } | undefined)?.status
      if (event.event !== "MIGRATION" || typeof status !== "string") return next
      statuses.push(status)
      return terminal.has(status) ? Effect.succeed(statuses) : next
    }
  )
  return Effect.timeoutFail(next, {
    duration: timeout,
    onTimeout: () => new MigrationTimeout({ side, statuses, timeout })
  })
}

const setCapabilities = (qmp: QmpClient, names: ReadonlyArray<string>) =>
  qmp.execute("migrate-set-capabilities", {
    capabilities: names.map((capability) => ({ capability, state: true }))
  } as never)

/** A temp directory for the socket or file, removed with the scope. */
const scratch = Effect.acquireRelease(
  Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "effect-qemu-migration-"))),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
)

/** Hands each QEMU one end of a connected UNIX socket pair, as the descriptor named `migration`. */
const passSocketPair = (source: QmpClient, destination: QmpClient): Effect.Effect<void, FdError, Scope.Scope> =>
  Effect.gen(function*() {
    const dir = yield* scratch
    const [a, b] = yield* Effect.acquireRelease(
      connectedPair(Path.join(dir, "pair.sock")),
      (ends) => Effect.sync(() => ends.forEach((end) => end.destroy()))
    )
    const fdOf = (socket: Net.Socket) => (socket as unknown as { readonly _handle: { readonly fd: number } })._handle.fd
    yield* destination.executeWithFd(fdOf(a), "getfd", { fdname: "migration" })
    yield* source.executeWithFd(fdOf(b), "getfd", { fdname: "migration" })
  })

const connectedPair = (path: string): Effect.Effect<[Net.Socket, Net.Socket]> =>
  Effect.async<[Net.Socket, Net.Socket]>((resume) => {
    let client: Net.Socket | undefined
    // A socket in a fresh private directory cannot fail to listen or connect but by a fault here.
    const fault = (error: Error) => resume(Effect.die(error))
    const server = Net.createServer({ pauseOnConnect: true }, (accepted) => {
      server.close()
      resume(Effect.succeed([accepted, client as Net.Socket]))
    })
    server.once("error", fault)
    server.listen(path, () => {
      client = Net.connect({ path }).once("error", fault)
      client.pause()
    })
    return Effect.sync(() => {
      server.close()
      client?.destroy()
    })
  })

/** The URIs each side takes, for the chosen transport. */
const prepare = (
  source: QmpClient,
  destination: QmpClient,
  transport: Transport
): Effect.Effect<{ readonly outgoing: string; readonly incoming: string }, FdError, Scope.Scope> => {
  if (transport === "fd") {
    return Effect.as(passSocketPair(source, destination), { outgoing: "fd:migration", incoming: "fd:migration" })
  }
  return Effect.map(scratch, (dir) => {
    if (transport === "unix") {
      const uri = `unix:${Path.join(dir, "migration.sock")}`
      return { outgoing: uri, incoming: uri }
    }
    const file = Path.join(dir, "migration.bin")
    return { outgoing: `exec:cat > '${file}'`, incoming: `exec:cat '${file}'` }
  })
}

const transports: ReadonlyArray<unknown> = ["unix", "fd", "file"]

/** The caller's transport, or `unix`; anything else is refused before a command is sent. */
const transportOption = (input: Transport | undefined): Effect.Effect<Transport, QmpArgumentError> =>
  input === undefined || transports.includes(input)
    ? Effect.succeed(input ?? "unix")
    : Effect.fail(
      new QmpArgumentError({
        command: "migrate",
        reason: "InvalidOption",
        path: "transport",
        detail: `expected "unix", "fd" or "file", got ${JSON.stringify(input) ?? String(input)}`
      })
    )

/**
 * Starts migrating `source` to `destination` (started with `-incoming defer`). Both sides are
 * watched from before the first command, so no `MIGRATION` event is missed.
 *
 * @since 0.2.0
 * @category constructors
 */
export const start = (
  sourceTarget: QmpTarget,
  destinationTarget: QmpTarget,
  options: MigrateOptions = {}
): Effect.Effect<Migration, QmpExecuteError | FdError, Scope.Scope> =>
  Effect.gen(function*() {
    const source = clientOf(sourceTarget)
    const destination = clientOf(destinationTarget)
    const timeout = yield* timeoutOption("migrate", options.timeout)
    const transport = yield* transportOption(options.transport)
    const capabilities = ["events", ...(options.capabilities ?? [])]
    yield* setCapabilities(source, capabilities)
    yield* setCapabilities(destination, capabilities)
    if (options.parameters !== undefined) yield* source.execute("migrate-set-parameters", options.parameters as never)
    const watchSource = yield* source.subscribe
    const watchDestination = yield* destination.subscribe
    const { incoming, outgoing } = yield* prepare(source, destination, transport)
    const incomingDone = yield* Effect.forkScoped(watchSide(watchDestination, "destination", timeout))
    // A file must be written whole before the destination reads it.
    if (transport !== "file") yield* destination.execute("migrate-incoming", { uri: incoming })
    const sourceDone = yield* Effect.forkScoped(watchSide(watchSource, "source", timeout))
    yield* source.execute("migrate", { uri: outgoing })
    return makeMigration(source, destination, { outgoing, incoming, transport }, sourceDone, incomingDone)
  })

/** The reason QEMU gives for a failed migration, if it still can. */
const reason = (qmp: QmpClient): Effect.Effect<string | undefined> =>
  qmp.execute("query-migrate").pipe(
    Effect.map((info) => (info as { readonly "error-desc"?: string })["error-desc"]),
    Effect.orElseSucceed(() => undefined)
  )

type SideFiber = Fiber.Fiber<Array<string>, MigrationTimeout | QmpDisconnected | QmpProtocolError>

/** A side's statuses once it ended; `MigrationFailed` unless it ended as `expected`. */
const ended = (fiber: SideFiber, qmp: QmpClient, side: "source" | "destination", expected: string) =>
  Effect.flatMap(Fiber.join(fiber), (statuses) => {
    const status = statuses.at(-1) ?? "unknown"
    return status === expected
      ? Effect.succeed({ statuses })
      : Effect.flatMap(reason(qmp), (error) => Effect.fail(new MigrationFailed({ side, status, error, statuses })))
  })

const makeMigration = (
  source: QmpClient,
  destination: QmpClient,
  plan: { readonly outgoing: string; readonly incoming: string; readonly transport: Transport },
  sourceDone: SideFiber,
  destinationDone: SideFiber
): Migration => ({
  uri: plan.outgoing,
  wait: Effect.gen(function*() {
    const sourceSide = yield* ended(sourceDone, source, "source", "completed")
    if (plan.transport === "file") yield* destination.execute("migrate-incoming", { uri: plan.incoming })
    const destinationSide = yield* ended(destinationDone, destination, "destination", "completed")
    const info = yield* source.execute("query-migrate")
    return { source: sourceSide, destination: destinationSide, info }
  }),
  cancel: Effect.zipRight(source.execute("migrate_cancel"), ended(sourceDone, source, "source", "cancelled"))
})

/**
 * Migrates `source` to `destination` (started with `-incoming defer`) and waits for the end on
 * both sides.
 *
 * @since 0.2.0
 * @category combinators
 */
export const migrate = (
  source: QmpTarget,
  destination: QmpTarget,
  options: MigrateOptions = {}
): Effect.Effect<MigrationResult, MigrationError | FdError> =>
  Effect.scoped(Effect.flatMap(start(source, destination, options), (migration) => migration.wait))
