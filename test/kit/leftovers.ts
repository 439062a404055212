/**
 * What a failed launch may leave behind, as seen from this process: QEMUs it spawned that still
 * run, descriptors it still holds, entries in a machine's base temp directory.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import { spawnerProcess } from "../../src/internal/spawner.js"
import { procStat, runs } from "./qemu.js"

/** The QEMU processes whose parent is this process or its spawner, and that still run. */
export const childQemus = (): Array<number> => {
  const spawner = spawnerProcess()?.pid
  return Fs.readdirSync("/proc").filter((pid) => /^\d+$/.test(pid)).map(Number).filter((pid) => {
    const stat = procStat(pid)
    return runs(stat) && (stat.ppid === process.pid || stat.ppid === spawner) && stat.comm.startsWith("qemu-")
  })
}

/** This process's sockets and pipes, by descriptor; the spawner's channel (the process's) aside. */
const descriptors = (): Map<string, string> => {
  const fds = new Map<string, string>()
  const channel = String(spawnerProcess()?.channelFd)
  for (const fd of Fs.readdirSync("/proc/self/fd")) {
    if (fd === channel) continue
    try {
      const target = Fs.readlinkSync(`/proc/self/fd/${fd}`)
      if (target.startsWith("socket:") || target.startsWith("pipe:")) fds.set(fd, target)
    } catch {
      // closed while listing
    }
  }
  return fds
}

/**
 * Runs `effect`, which must fail, and returns its error once nothing it started is left: no child
 * QEMU, no descriptor opened meanwhile, nothing in `dir` (the machine's `baseTempDir`). It runs in
 * the caller's scope, which is still open when this checks: a machine must release what it took
 * when it fails, not when that scope ends. Destroyed
 * sockets give their descriptors back on a later turn of the event loop, so that is waited for
 * briefly; a QEMU or temp entry is not, since the launch must have released them before failing.
 */
export const failsLeavingNothing = <A, E, R>(dir: string, effect: Effect.Effect<A, E, R>): Effect.Effect<E, Error, R> =>
  Effect.gen(function*() {
    const before = descriptors()
    const exit = yield* Effect.exit(effect)
    if (Exit.isSuccess(exit)) return yield* Effect.fail(new Error("expected the launch to fail, and it succeeded"))
    const error = Cause.failureOption(exit.cause)
    if (Option.isNone(error)) {
      return yield* Effect.fail(new Error(`expected a typed failure: ${Cause.pretty(exit.cause)}`))
    }
    const qemus = childQemus()
    if (qemus.length > 0) return yield* Effect.fail(new Error(`QEMU still running: pid ${qemus.join(", ")}`))
    const entries = Fs.readdirSync(dir)
    if (entries.length > 0) return yield* Effect.fail(new Error(`left in ${dir}: ${entries.join(", ")}`))
    let opened: Array<string> = []
    for (let attempt = 0; attempt < 50; attempt++) {
      const now = descriptors()
      opened = [...now].filter(([fd, target]) => before.get(fd) !== target).map(([fd, target]) => `${fd} -> ${target}`)
      if (opened.length === 0) return error.value
      yield* Effect.sleep("20 millis")
    }
    return yield* Effect.fail(new Error(`descriptors left open: ${opened.join(", ")}`))
  })
