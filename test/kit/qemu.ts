/**
 * Just enough process handling to run a test guest under real QEMU with its serial console on a
 * socketpair at fd 3. Stands in for the Machine module in console tests.
 */
import { Deferred, Duration, Effect } from "effect"
import type { Scope } from "effect"
import * as ChildProcess from "node:child_process"
import * as NodeFs from "node:fs/promises"
import type * as Net from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"

/** Connects COM1 to the socketpair that `spawn` puts at fd 3. */
export const consoleArgs: ReadonlyArray<string> = ["-chardev", "socket,id=console,fd=3", "-serial", "chardev:console"]

/** A running QEMU: its pid, the parent's end of the console socketpair, and its exit. */
export interface QemuChild {
  readonly pid: number
  readonly console: Net.Socket
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  readonly stderr: () => string
}

/** Whether a process with this pid exists (a zombie counts until it is reaped). */
export const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * Starts `qemu-system-x86_64` with `consoleArgs` and `args`. On release it is killed with SIGKILL
 * and waited for, at most five seconds.
 */
export const spawnQemu = (args: ReadonlyArray<string>): Effect.Effect<QemuChild, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const exited = yield* Deferred.make<{ code: number | null; signal: NodeJS.Signals | null }>()
      let stderr = ""
      const child = ChildProcess.spawn("qemu-system-x86_64", [...consoleArgs, ...args], {
        stdio: ["ignore", "ignore", "pipe", "pipe"]
      })
      child.stderr!.setEncoding("utf8").on("data", (text: string) => {
        stderr = (stderr + text).slice(-8192)
      })
      child.once("exit", (code, signal) => Deferred.unsafeDone(exited, Effect.succeed({ code, signal })))
      yield* Effect.async<void>((resume) => {
        child.once("spawn", () => resume(Effect.void))
        child.once("error", (error) => resume(Effect.die(error)))
      })
      return {
        pid: child.pid!,
        console: child.stdio[3] as Net.Socket,
        exited: Deferred.await(exited),
        stderr: () => stderr,
        child
      }
    }),
    ({ child, exited }) =>
      Effect.sync(() => child.kill("SIGKILL")).pipe(
        Effect.zipRight(exited),
        Effect.timeout(Duration.seconds(5)),
        Effect.catchAllCause((cause) => Effect.logWarning("QEMU did not exit after SIGKILL", cause))
      )
  )

/** A fresh temporary directory, removed with everything in it on release. */
export const temporaryDirectory: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(() => NodeFs.mkdtemp(NodePath.join(NodeOs.tmpdir(), "effect-qemu-console-"))),
  (directory) =>
    Effect.tryPromise(() => NodeFs.rm(directory, { recursive: true, force: true })).pipe(
      Effect.catchAll((error) => Effect.logWarning(`could not remove ${directory}`, error.cause))
    )
)
