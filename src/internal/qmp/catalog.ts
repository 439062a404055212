/**
 * What the running QEMU can do: the names of its commands, asked for once per session and only
 * when a command outside the core that every QEMU has is first executed. A command the list does
 * not name fails at once with `QmpCommandUnavailable` instead of a round trip to a generic
 * `CommandNotFound`.
 *
 * @internal
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"
import { QmpCommandUnavailable } from "../../QmpError.js"
import { closestName } from "../closest.js"

/**
 * Commands no QEMU build since 5.2 lacks (QEMU's core QMP, run-state, QOM, qdev and fd-passing
 * commands, which no configure option removes): executing them never costs the lookup.
 */
const core: ReadonlySet<string> = new Set([
  "qmp_capabilities",
  "query-commands",
  "query-version",
  "query-qmp-schema",
  "query-name",
  "query-status",
  "quit",
  "stop",
  "cont",
  "system_reset",
  "system_powerdown",
  "human-monitor-command",
  "qom-list",
  "qom-get",
  "qom-set",
  "object-add",
  "object-del",
  "device_add",
  "device_del",
  "getfd",
  "closefd",
  "add-fd",
  "remove-fd",
  "query-fdsets",
  "query-chardev"
])

/** Who the running QEMU is, for the error's message. */
export interface Identity {
  readonly version: string
  readonly package: string
}

/**
 * The session's knowledge of its QEMU's commands. `undefined` names mean "not known": the lookup
 * failed or the peer's answer was not a command list, and nothing is refused.
 */
export class Catalog {
  private names: ReadonlySet<string> | undefined
  private loaded: Deferred.Deferred<void> | undefined

  /**
   * @param identity names the QEMU in errors.
   * @param lookup asks QEMU for its command names (`undefined` when it cannot tell).
   * @param scope where the one lookup runs, so that no caller's interruption cuts it short.
   */
  constructor(
    private readonly identity: Identity,
    private readonly lookup: Effect.Effect<ReadonlyArray<string> | undefined>,
    private readonly scope: Scope.Scope
  ) {}

  /** Fills the catalog from names already at hand (e.g. the schema fetched for `checkArgs`). */
  prime(names: ReadonlyArray<string>): void {
    this.names = new Set(names)
    this.loaded = Deferred.unsafeMake(FiberId.none)
    Deferred.unsafeDone(this.loaded, Effect.void)
  }

  /**
   * The verdict on a command, at once when it can be given: `undefined` to go ahead, the error to
   * fail with, or `"lookup"` when the list must be fetched first (see `verdictAfterLookup`).
   */
  verdict(command: string): QmpCommandUnavailable | "lookup" | undefined {
    if (core.has(command)) return undefined
    if (this.loaded === undefined) return "lookup"
    return this.judge(command)
  }

  /** The verdict once the list has been fetched (the first caller starts the lookup). */
  verdictAfterLookup(command: string): Effect.Effect<QmpCommandUnavailable | undefined> {
    return Effect.suspend(() => {
      if (this.loaded === undefined) {
        const loaded = Deferred.unsafeMake<void>(FiberId.none)
        this.loaded = loaded
        return Effect.zipRight(this.startLookup(loaded), Deferred.await(loaded))
      }
      return Deferred.await(this.loaded)
    }).pipe(Effect.map(() => this.judge(command)))
  }

  private startLookup(loaded: Deferred.Deferred<void>): Effect.Effect<void> {
    return this.lookup.pipe(
      Effect.map((names) => {
        this.names = names === undefined ? undefined : new Set(names)
      }),
      Effect.ensuring(Deferred.complete(loaded, Effect.void)),
      Effect.forkIn(this.scope),
      Effect.asVoid
    )
  }

  private judge(command: string): QmpCommandUnavailable | undefined {
    if (this.names === undefined || this.names.has(command)) return undefined
    return new QmpCommandUnavailable({
      command,
      version: this.identity.version,
      package: this.identity.package,
      suggestion: closestName(command, this.names)
    })
  }
}

/** The names in a `query-commands` reply, or `undefined` when the reply is not such a list. */
export const commandNames = (reply: unknown): ReadonlyArray<string> | undefined => {
  if (!Array.isArray(reply)) return undefined
  const names: Array<string> = []
  for (const entry of reply) {
    const name: unknown = typeof entry === "object" && entry !== null ? (entry as { name?: unknown }).name : undefined
    if (typeof name !== "string") return undefined
    names.push(name)
  }
  return names
}
