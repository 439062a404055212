/**
 * The QEMU process: spawned without a shell, its output captured in a log file, its exit
 * observed, every wait on it bounded.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { Duplex } from "node:stream"
import { type ChildLike, type Spawn, spawnDirect } from "./internal/spawner.js"
import * as Timer from "./internal/timer.js"
import { withHotSpan } from "./internal/tracing.js"
import { LaunchError } from "./MachineError.js"

/**
 * How a process ended: an exit code, or the signal that killed it.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExitStatus {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

/**
 * What to spawn.
 *
 * @since 0.1.0
 * @category models
 */
export interface QemuProcessOptions {
  /** The machine's name, for errors and logs. */
  readonly name: string
  /** The QEMU binary: a path, or a name looked up on `PATH`. */
  readonly binary: string
  /** Arguments placed before the binary, e.g. `["setpriv", "--pdeathsig", "KILL", "--"]`. */
  readonly wrapper?: ReadonlyArray<string> | undefined
  /** Arguments after the binary. */
  readonly args: ReadonlyArray<string>
  /** Where QEMU's stdout and stderr go. Created with mode 0600. */
  readonly logPath: string
  /**
   * File descriptors from 3 up: `"pipe"` makes a UNIX socketpair (the parent's end is in
   * `stdio`), a number hands that open descriptor to QEMU at that position.
   */
  readonly extraStdio?: ReadonlyArray<"pipe" | number> | undefined
  /** How long release waits for the killed process to be reaped. Default: 10 seconds. */
  readonly reapTimeout?: Duration.DurationInput | undefined
}

/**
 * A running (or finished) QEMU process.
 *
 * @since 0.1.0
 * @category models
 */
export interface QemuProcessService {
  readonly name: string
  readonly pid: number
  /** The full command line, wrapper included. */
  readonly commandLine: ReadonlyArray<string>
  readonly logPath: string
  /** The parent's ends of the stdio entries, by child fd number (3 and up for `"pipe"`). */
  readonly stdio: ReadonlyArray<Duplex | null>
  readonly isRunning: Effect.Effect<boolean>
  /** The exit status, once the process has exited. */
  readonly exitStatus: Effect.Effect<Option.Option<ExitStatus>>
  /** Waits for the process to exit, without bound. */
  readonly awaitExit: Effect.Effect<ExitStatus>
  /** Waits for the process to exit; `None` when the timeout elapsed first. */
  readonly waitExit: (timeout: Duration.DurationInput) => Effect.Effect<Option.Option<ExitStatus>>
  /** Sends a signal; does nothing if the process has exited. */
  readonly signal: (signal: NodeJS.Signals) => Effect.Effect<void>
  /** SIGKILLs the process and waits (bounded) until it is reaped. */
  readonly kill: Effect.Effect<Option.Option<ExitStatus>>
  /** What QEMU has written to stdout and stderr so far. */
  readonly readLog: Effect.Effect<string>
}

/**
 * The QemuProcess service.
 *
 * @since 0.1.0
 * @category tags
 */
export class QemuProcess extends Context.Tag("effect-qemu/QemuProcess")<QemuProcess, QemuProcessService>() {}

const isExecutableFile = (path: string): "ok" | "missing" | "directory" | "not-executable" => {
  let stat: Fs.Stats
  try {
    stat = Fs.statSync(path)
  } catch {
    return "missing"
  }
  if (stat.isDirectory()) return "directory"
  if (!stat.isFile()) return "not-executable"
  try {
    Fs.accessSync(path, Fs.constants.X_OK)
    return "ok"
  } catch {
    return "not-executable"
  }
}

const foundOnPath = new Map<string, string>()

/**
 * Finds an executable the way `execvp` would, so that a missing binary is reported before
 * anything is spawned.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveExecutable = (
  program: string,
  name: string,
  field: string
): Effect.Effect<string, LaunchError> =>
  Effect.suspend(() => {
    const fail = (reason: "BinaryNotFound" | "NotExecutable", detail: string) =>
      Effect.fail(new LaunchError({ reason, name, detail: `${field}: ${detail}`, commandLine: [] }))
    if (program.includes("/")) {
      const verdict = isExecutableFile(program)
      if (verdict === "ok") return Effect.succeed(program)
      if (verdict === "missing") return fail("BinaryNotFound", `"${program}" does not exist`)
      if (verdict === "directory") return fail("NotExecutable", `"${program}" is a directory, not a program`)
      return fail("NotExecutable", `"${program}" is not an executable file (check its permissions)`)
    }
    const searchPath = process.env.PATH ?? ""
    // A fleet launches the same binary many times: remember where the search ended, and check
    // only that place again (a binary removed since is still noticed).
    const key = `${searchPath}\0${program}`
    const known = foundOnPath.get(key)
    if (known !== undefined && isExecutableFile(known) === "ok") return Effect.succeed(known)
    const dirs = searchPath.split(Path.delimiter).filter((dir) => dir.length > 0)
    for (const dir of dirs) {
      const candidate = Path.join(dir, program)
      if (isExecutableFile(candidate) === "ok") {
        if (foundOnPath.size > 64) foundOnPath.clear()
        foundOnPath.set(key, candidate)
        return Effect.succeed(candidate)
      }
    }
    return fail(
      "BinaryNotFound",
      `"${program}" was not found on PATH; install it (Debian: apt-get install qemu-system-x86) or give a full path`
    )
  })

/**
 * The last lines of a text, at most `maxBytes` of it.
 *
 * @internal
 */
export const tail = (text: string, lines = 20, maxBytes = 4096): string => {
  const clipped = text.length > maxBytes ? text.slice(-maxBytes) : text
  return clipped.split("\n").slice(-lines - 1).join("\n").trim()
}

/**
 * Waits for a child to exit, `None` when the timeout elapses first. A plain timer and the exit
 * event: no timeout fiber, and the bound holds even when called from a finalizer (an
 * uninterruptible region).
 */
const waitForExit = (child: ChildLike, timeout: Duration.DurationInput): Effect.Effect<Option.Option<ExitStatus>> =>
  Effect.suspend(() => {
    if (child.exitCode !== null || child.signalCode !== null) {
      return Effect.succeed(Option.some({ code: child.exitCode, signal: child.signalCode }))
    }
    return Timer.awaitWithin<Option.Option<ExitStatus>, never, "elapsed">(Duration.decode(timeout), (resume) => {
      const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
        resume(Effect.succeed(Option.some({ code, signal })))
      child.once("exit", onExit)
      return () => child.off("exit", onExit)
    }, () => "elapsed").pipe(
      // The bound elapsing is an answer here (`None`), not an error.
      Effect.orElseSucceed(Option.none)
    )
  })

/**
 * How much of QEMU's log `readLog` returns: its last MiB.
 *
 * @internal
 */
export const logTailBytes = 1024 * 1024

/**
 * The last `maxBytes` of a file as text ("" when it cannot be read). Only the tail is read: a
 * chatty QEMU can write hundreds of MiB of log.
 */
const readTail = (path: string, maxBytes: number) =>
  // Synchronous: at most `maxBytes` from a local file, four system calls, where the promise API
  // took four trips through the thread pool for every machine released.
  Effect.sync(() => {
    let fd: number | undefined
    try {
      fd = Fs.openSync(path, "r")
      const size = Fs.fstatSync(fd).size
      const length = Math.min(size, maxBytes)
      const buffer = Buffer.allocUnsafe(length)
      const bytesRead = Fs.readSync(fd, buffer, 0, length, size - length)
      // A cut through a multi-byte character at the start decodes as one replacement character.
      return buffer.subarray(0, bytesRead).toString("utf8")
    } catch {
      return ""
    } finally {
      if (fd !== undefined) Fs.closeSync(fd)
    }
  })

/**
 * Sends a signal to the process group QEMU was started in (its own, see `detached`), so that a
 * wrapper's children (`strace -f` forks QEMU) get it too; falls back to the child alone.
 */
const signalGroup = (child: ChildLike, signal: NodeJS.Signals): void => {
  try {
    process.kill(-child.pid!, signal)
  } catch {
    try {
      child.kill(signal)
    } catch {
      // already gone
    }
  }
}

const exitHooks = new WeakMap<QemuProcessService, (listener: (status: ExitStatus) => void) => () => void>()

/**
 * Calls `listener` once the process has exited (at once if it has); returns what removes it.
 * A callback, not a fiber awaiting the exit for the machine's whole life.
 *
 * @internal
 */
export const onExit = (service: QemuProcessService, listener: (status: ExitStatus) => void): () => void => {
  const hook = exitHooks.get(service)
  if (hook !== undefined) return hook(listener)
  // A service made elsewhere: wait for its exit with a fiber after all.
  const fiber = Effect.runFork(Effect.map(service.awaitExit, listener))
  return () => Effect.runFork(Fiber.interrupt(fiber))
}

/**
 * Spawns QEMU. The process is SIGKILLed and reaped (bounded) when the scope closes, if it is
 * still running then; a graceful shutdown is the Machine's job and happens before.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: QemuProcessOptions): Effect.Effect<QemuProcessService, LaunchError, Scope.Scope> =>
  makeVia(options, spawnDirect)

/**
 * {@link make}, with the way QEMU is started chosen by the caller (directly, or by the spawner).
 *
 * @internal
 */
export const makeVia = (
  options: QemuProcessOptions,
  via: Spawn
): Effect.Effect<QemuProcessService, LaunchError, Scope.Scope> =>
  Effect.gen(function*() {
    const wrapper = options.wrapper ?? []
    const binary = yield* resolveExecutable(options.binary, options.name, "binary")
    if (wrapper.length > 0) yield* resolveExecutable(wrapper[0], options.name, "wrapper")
    const commandLine = [...wrapper, binary, ...options.args]
    const reapTimeout = options.reapTimeout ?? Duration.seconds(10)

    const spawned = yield* Effect.acquireRelease(
      Effect.async<{ child: ChildLike; exited: Deferred.Deferred<ExitStatus> }, LaunchError>((resume) =>
        via({ argv: commandLine, logPath: options.logPath, extraStdio: options.extraStdio ?? [] }, (result) => {
          if ("failed" in result) {
            return resume(Effect.fail(
              new LaunchError({ reason: "SpawnFailed", name: options.name, detail: result.failed, commandLine })
            ))
          }
          const exited = Deferred.unsafeMake<ExitStatus>(FiberId.none)
          result.once("exit", (code, signal) => Deferred.unsafeDone(exited, Effect.succeed({ code, signal })))
          resume(Effect.succeed({ child: result, exited }))
        })
      ),
      ({ child, exited }) =>
        Effect.gen(function*() {
          // The group too when the wrapper already exited: what it forked must not outlive it.
          signalGroup(child, "SIGKILL")
          if (Option.isNone(yield* Deferred.poll(exited))) {
            const reaped = yield* waitForExit(child, reapTimeout)
            if (Option.isNone(reaped)) {
              yield* Effect.logError(
                `QEMU process ${child.pid} was not reaped ${Duration.format(reapTimeout)} after SIGKILL`
              )
            }
          }
          for (const stream of child.stdio as ReadonlyArray<Duplex | null>) stream?.destroy()
        })
    )
    const { child, exited } = spawned
    const pid = child.pid!
    let exitListeners: Set<(status: ExitStatus) => void> | undefined

    const exitStatus = Effect.map(
      Deferred.poll(exited),
      (done) => Option.isSome(done) ? Option.some(Effect.runSync(done.value)) : Option.none()
    )

    const waitExit = (timeout: Duration.DurationInput) => waitForExit(child, timeout)

    const signal = (sig: NodeJS.Signals) =>
      Effect.sync(() => {
        if (child.exitCode === null && child.signalCode === null) signalGroup(child, sig)
      })

    const service: QemuProcessService = {
      name: options.name,
      pid,
      commandLine,
      logPath: options.logPath,
      stdio: child.stdio as ReadonlyArray<Duplex | null>,
      isRunning: Effect.map(Deferred.isDone(exited), (done) => !done),
      exitStatus,
      awaitExit: Deferred.await(exited),
      waitExit,
      signal,
      kill: Effect.zipRight(signal("SIGKILL"), waitExit(reapTimeout)),
      readLog: readTail(options.logPath, logTailBytes)
    }
    exitHooks.set(service, (listener) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        listener({ code: child.exitCode, signal: child.signalCode })
        return () => {}
      }
      if (exitListeners === undefined) {
        const listeners = exitListeners = new Set()
        child.once("exit", (code, signal) => {
          for (const each of listeners) Timer.guard(() => each({ code, signal }))
        })
      }
      exitListeners.add(listener)
      return () => exitListeners?.delete(listener)
    })
    return service
  }).pipe(withHotSpan("QemuProcess.make", { "machine.name": options.name }))

/**
 * A layer that provides {@link QemuProcess}.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: QemuProcessOptions): Layer.Layer<QemuProcess, LaunchError> =>
  Layer.scoped(QemuProcess, make(options))
