/**
 * Runs a command-line tool (qemu-img, qemu-io) to its end: its output collected up to a bound,
 * a timeout, and a child that never outlives the call (an interrupted or timed-out call kills it
 * and waits for it to be reaped).
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import { arm } from "./timer.js"

/** How a tool ended. */
export interface ToolExit {
  readonly stdout: string
  readonly stderr: string
  readonly exitCode: number | null
  readonly signal: NodeJS.Signals | null
}

/** Why a tool did not run to its end. */
export type ToolFailure =
  | { readonly _tag: "NotFound"; readonly detail: string }
  | { readonly _tag: "SpawnFailed"; readonly detail: string }
  | { readonly _tag: "Timeout"; readonly detail: string }
  | { readonly _tag: "OutputTooLarge"; readonly detail: string }

/** Options of {@link runTool}. */
export interface ToolOptions {
  readonly timeout: Duration.Duration
  readonly maxOutputBytes: number
}

// Bounds the wait for a SIGKILLed child to be reaped (a process stuck in the kernel may take longer).
const reapMillis = 5000

const describeSpawnError = (binary: string, error: NodeJS.ErrnoException): ToolFailure =>
  error.code === "ENOENT" || error.code === "EACCES" || error.code === "ENOTDIR"
    ? { _tag: "NotFound", detail: `cannot run "${binary}" (${error.code}): install it or give its path` }
    : { _tag: "SpawnFailed", detail: `cannot run "${binary}": ${error.message}` }

/** Output of one stream, kept up to a shared byte budget. */
class Collector {
  private readonly chunks: Array<Buffer> = []
  constructor(private readonly budget: { left: number }) {}
  /** Keeps a chunk; false when the budget is exhausted. */
  push(chunk: Buffer): boolean {
    this.budget.left -= chunk.length
    if (this.budget.left < 0) return false
    this.chunks.push(chunk)
    return true
  }
  text(): string {
    return Buffer.concat(this.chunks).toString("utf8")
  }
}

/**
 * Runs `binary` with `args` (no shell), stdin closed. Succeeds with how it ended, whatever its exit
 * code; fails when it cannot be started, runs past `timeout`, or writes more than `maxOutputBytes`.
 */
export const runTool = (
  binary: string,
  args: ReadonlyArray<string>,
  options: ToolOptions
): Effect.Effect<ToolExit, ToolFailure> =>
  Effect.async<ToolExit, ToolFailure>((resume) => {
    let child: ChildProcess.ChildProcess
    try {
      child = ChildProcess.spawn(binary, args, { stdio: ["ignore", "pipe", "pipe"] })
    } catch (error) {
      resume(Effect.fail(describeSpawnError(binary, error as NodeJS.ErrnoException)))
      return
    }
    const run = watch(child, binary, options, resume)
    return Effect.async<void>((done) => run.kill(() => done(Effect.void)))
  })

const once = (f: () => void): () => void => {
  let called = false
  return () => {
    if (called) return
    called = true
    f()
  }
}

/** Follows a spawned child to its end; `kill` ends it early and calls back once it is reaped. */
const watch = (
  child: ChildProcess.ChildProcess,
  binary: string,
  options: ToolOptions,
  resume: (result: Effect.Effect<ToolExit, ToolFailure>) => void
) => {
  const budget = { left: options.maxOutputBytes }
  const stdout = new Collector(budget)
  const stderr = new Collector(budget)
  let closed = false
  let failure: ToolFailure | undefined
  const reaped: Array<() => void> = []
  const finish = once(() => {
    disarm()
    resume(failure !== undefined ? Effect.fail(failure) : Effect.succeed(exit()))
  })
  const kill = (onReaped: () => void) => {
    if (closed) return onReaped()
    const callback = once(onReaped)
    const disarmReap = arm(Duration.millis(reapMillis), callback)
    reaped.push(() => (disarmReap(), callback()))
    child.kill("SIGKILL")
  }
  const stop = (why: ToolFailure) => {
    failure ??= why
    kill(finish)
  }
  const overflow = () =>
    stop({ _tag: "OutputTooLarge", detail: `wrote more than ${options.maxOutputBytes} bytes of output` })
  child.stdout!.on("data", (chunk: Buffer) => stdout.push(chunk) || overflow())
  child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk) || overflow())
  const disarm = arm(options.timeout, () => stop({ _tag: "Timeout", detail: "did not finish in time" }))
  let exit = (): ToolExit => ({ stdout: stdout.text(), stderr: stderr.text(), exitCode: null, signal: null })
  child.once("error", (error: NodeJS.ErrnoException) => {
    if (child.pid !== undefined) return stop({ _tag: "SpawnFailed", detail: error.message })
    closed = true
    failure ??= describeSpawnError(binary, error)
    finish()
  })
  child.once("close", (exitCode: number | null, signal: NodeJS.Signals | null) => {
    closed = true
    exit = () => ({ stdout: stdout.text(), stderr: stderr.text(), exitCode, signal })
    for (const callback of reaped.splice(0)) callback()
    finish()
  })
  return { kill }
}
