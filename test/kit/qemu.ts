/**
 * Just enough process handling to run QEMU below the Machine layer: with its serial console on a
 * socketpair at fd 3 (console tests), or with its QMP monitor there (QMP client tests).
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import type * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Qmp from "../../src/Qmp.js"
import type { QmpConnectError } from "../../src/QmpError.js"

export const qemuBinary = process.env.QEMU_BINARY ?? "qemu-system-x86_64"

/** Connects COM1 to the socketpair that `spawn` puts at fd 3. */
export const consoleArgs: ReadonlyArray<string> = ["-chardev", "socket,id=console,fd=3", "-serial", "chardev:console"]

/** Puts the QMP monitor on the socketpair at fd 3, on an empty machine. */
export const monitorArgs: ReadonlyArray<string> = [
  "-M",
  "none",
  "-nodefaults",
  "-display",
  "none",
  "-chardev",
  "socket,id=mon,fd=3",
  "-mon",
  "chardev=mon,mode=control"
]

/** A running QEMU: its pid, the parent's end of the socketpair at fd 3, and its exit. */
export interface QemuChild {
  readonly child: ChildProcess.ChildProcess
  readonly pid: number
  /** The parent's end of the socketpair at fd 3: the console or the monitor, by the arguments. */
  readonly console: Net.Socket
  readonly monitor: Net.Socket
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
  readonly stderr: () => string
}

/** A process as /proc shows it: its state letter, its parent and its (15-character) name. */
export interface ProcStat {
  readonly state: string
  readonly ppid: number
  readonly comm: string
}

/** What /proc says of `pid`, or undefined once the process is reaped (or never was). */
export const procStat = (pid: number): ProcStat | undefined => {
  let stat: string
  try {
    stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
  // The name may hold spaces and parentheses: the fields after it follow the last ")".
  const close = stat.lastIndexOf(")")
  const [state = "", ppid = ""] = stat.slice(close + 2).split(" ")
  return { state, ppid: Number(ppid), comm: stat.slice(stat.indexOf("(") + 1, close) }
}

/**
 * Whether a process seen in /proc runs: it is not dead waiting to be reaped (a zombie, "Z", has
 * exited; it only waits for its parent, or for init once its parent is gone too).
 */
export const runs = (stat: ProcStat | undefined): stat is ProcStat =>
  stat !== undefined && stat.state !== "Z" && stat.state !== "X"

/** Whether the process with this pid runs (see `runs`). */
export const isRunning = (pid: number): boolean => runs(procStat(pid))

/** What QEMU gets beyond its arguments. */
export interface SpawnOptions {
  /** Open descriptors handed to QEMU at fd 4, 5, ... in this order (for `-add-fd fd=4,...`). */
  readonly fds?: ReadonlyArray<number>
}

/**
 * Starts QEMU with `args` and a socketpair at fd 3. On release it is woken if stopped, killed
 * with SIGKILL and waited for, at most five seconds.
 */
const spawnWithFd3 = (
  args: ReadonlyArray<string>,
  options: SpawnOptions = {}
): Effect.Effect<QemuChild, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const exited = yield* Deferred.make<{ code: number | null; signal: NodeJS.Signals | null }>()
      let stderr = ""
      const child = ChildProcess.spawn(qemuBinary, args, {
        stdio: ["ignore", "ignore", "pipe", "pipe", ...(options.fds ?? [])]
      })
      child.stderr!.setEncoding("utf8").on("data", (text: string) => {
        stderr = (stderr + text).slice(-8192)
      })
      child.once("exit", (code, signal) => Deferred.unsafeDone(exited, Effect.succeed({ code, signal })))
      yield* Effect.async<void>((resume) => {
        child.once("spawn", () => resume(Effect.void))
        child.once("error", (error) => resume(Effect.die(error)))
      })
      const socket = child.stdio[3] as Net.Socket
      return {
        child,
        pid: child.pid!,
        console: socket,
        monitor: socket,
        exited: Deferred.await(exited),
        stderr: () => stderr
      }
    }),
    ({ child, exited }) =>
      Effect.sync(() => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGCONT")
          child.kill("SIGKILL")
        }
      }).pipe(
        Effect.zipRight(exited),
        Effect.timeout(Duration.seconds(5)),
        Effect.catchAllCause((cause) => Effect.logWarning("QEMU did not exit after SIGKILL", cause))
      )
  )

/** Starts QEMU with its serial console at fd 3 (`consoleArgs`) and `args`. */
export const spawnQemu = (
  args: ReadonlyArray<string>,
  options?: SpawnOptions
): Effect.Effect<QemuChild, never, Scope.Scope> => spawnWithFd3([...consoleArgs, ...args], options)

/** Starts `-M none -nodefaults` QEMU with its QMP monitor at fd 3 (`monitorArgs`) and `extraArgs`. */
export const rawQemu = (
  extraArgs: ReadonlyArray<string> = [],
  options?: SpawnOptions
): Effect.Effect<QemuChild, never, Scope.Scope> => spawnWithFd3([...monitorArgs, ...extraArgs], options)

/**
 * `rawQemu` with the library's QMP client on its monitor: for tests that work below the Machine
 * (passing descriptors over the monitor socket, reading QEMU's replies raw with `qmp.raw`).
 */
export const rawQmp = (
  extraArgs: ReadonlyArray<string> = [],
  options: SpawnOptions & { readonly qmp?: Qmp.QmpOptions } = {}
): Effect.Effect<{ readonly qemu: QemuChild; readonly qmp: Qmp.QmpClient }, QmpConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    const qemu = yield* rawQemu(extraArgs, options)
    const qmp = yield* Qmp.make({ _tag: "Duplex", duplex: qemu.monitor }, options.qmp)
    return { qemu, qmp }
  })

/** The arguments of an empty machine, for tests that need QMP and nothing else. */
export const noneArgs: ReadonlyArray<string> = ["-M", "none", "-nodefaults"]

/** A fresh temporary directory named `prefix...`, removed with everything in it on release. */
export const tempDir = (prefix = "effect-qemu-test-"): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => Fs.promises.mkdtemp(Path.join(Os.tmpdir(), prefix))),
    (directory) =>
      Effect.tryPromise(() => Fs.promises.rm(directory, { recursive: true, force: true })).pipe(
        Effect.catchAll((error) => Effect.logWarning(`could not remove ${directory}`, error.cause))
      )
  )

/** A fresh temporary directory, removed with everything in it on release. */
export const temporaryDirectory: Effect.Effect<string, never, Scope.Scope> = tempDir("effect-qemu-console-")

/**
 * Polls `check` until it holds, failing with `what` after `within` ms: for facts that settle a
 * moment after the action that caused them (a killed process being reaped, a log line written by
 * a background fiber), instead of a fixed sleep.
 */
export const eventually = (what: string, check: () => boolean, within = 3000): Effect.Effect<void, Error> =>
  Effect.gen(function*() {
    const deadline = Date.now() + within
    while (!check()) {
      if (Date.now() > deadline) return yield* Effect.fail(new Error(`not within ${within} ms: ${what}`))
      yield* Effect.sleep("10 millis")
    }
  })
