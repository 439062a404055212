/**
 * `exec` on the guest agent: `guest-exec` with output captured, then `guest-exec-status` polled
 * with a growing pause until the process exits or the timeout passes; a process still running then
 * is killed through the agent.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type { ExecOptions, ExecResult, GuestAgentService, GuestExecStatus } from "../GuestAgent.js"
import { GuestExecFailed, GuestExecTimeout } from "../GuestAgentError.js"
import type { AgentCall } from "./agentCall.js"
import * as Timer from "./timer.js"

type ExecParts = Pick<GuestAgentService, "execStart" | "execStatus">

const firstPause = 10
const maxPause = 200
/** How long the kill and the final status of a timed-out command may take. */
const killBudget = Duration.seconds(5)

const text = (base64: string | undefined) => base64 === undefined ? "" : Buffer.from(base64, "base64").toString("utf8")

const toResult = (status: GuestExecStatus): ExecResult => ({
  exitCode: status.exitcode ?? null,
  signal: status.signal ?? null,
  stdout: text(status["out-data"]),
  stderr: text(status["err-data"]),
  truncated: status["out-truncated"] === true || status["err-truncated"] === true
})

/** Polls `pid` until it exits (its status) or `within` passes (`undefined`). */
const awaitExit = (agent: ExecParts, pid: number, within: Duration.Duration) =>
  Effect.gen(function*() {
    const budget = Timer.deadline(within)
    for (let pause = firstPause;; pause = Math.min(maxPause, pause * 2)) {
      const status = yield* agent.execStatus(pid)
      if (status.exited) return status
      const left = Duration.toMillis(budget.remaining())
      if (left <= 0) return undefined
      yield* Effect.sleep(Duration.millis(Math.min(pause, left)))
    }
  })

/**
 * Stops a process, then its descendants (found in /proc by their parent), then kills them all:
 * needs only `sh`, `grep` and `kill`, which every Linux guest with the agent has.
 */
const killTree = "t() { kill -STOP \"$1\" 2>/dev/null; for s in $(grep -ls \"^PPid:[[:space:]]*$1\\$\" " +
  "/proc/[0-9]*/status); do p=${s#/proc/}; t \"${p%/status}\"; done; kill -KILL \"$1\"; }; t \"$1\""

/**
 * The agent cannot stop a process it started: a shell it starts kills the process and its
 * descendants, then the process is reaped for its output.
 */
const killAndReap = (agent: ExecParts, pid: number) =>
  Effect.gen(function*() {
    const killer = yield* agent.execStart(["sh", "-c", killTree, "kill", String(pid)])
    yield* Effect.ignore(awaitExit(agent, killer, killBudget))
    return yield* awaitExit(agent, pid, killBudget)
  })

const timedOut = (agent: ExecParts, argv: ReadonlyArray<string>, pid: number, timeout: Duration.Duration) =>
  Effect.flatMap(
    Effect.option(killAndReap(agent, pid)),
    (status) => {
      const reaped = status._tag === "Some" && status.value !== undefined ? toResult(status.value) : undefined
      return Effect.fail(
        new GuestExecTimeout({
          argv,
          pid,
          timeout,
          killed: reaped !== undefined,
          stdout: reaped?.stdout ?? "",
          stderr: reaped?.stderr ?? ""
        })
      )
    }
  )

/** Runs `argv` in the guest to its end (see `GuestAgentService.exec`). */
export const execCommand = (
  agent: ExecParts,
  core: AgentCall,
  argv: ReadonlyArray<string>,
  options?: ExecOptions
) =>
  Effect.gen(function*() {
    const timeout = yield* core.timeout(options?.timeout)
    const pid = yield* agent.execStart(argv, { input: options?.input, env: options?.env })
    const status = yield* awaitExit(agent, pid, timeout)
    if (status === undefined) return yield* timedOut(agent, argv, pid, timeout)
    const result = toResult(status)
    if (options?.check === true && (result.exitCode !== 0 || result.signal !== null)) {
      return yield* new GuestExecFailed({ argv, ...result })
    }
    return result
  }).pipe(Effect.withSpan("GuestAgent.exec", { attributes: { "guest_agent.program": argv[0] } }))
