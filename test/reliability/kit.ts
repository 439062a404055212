/**
 * Test kit for the reliability suite: a seeded random source, and the checks that nothing leaked
 * (child processes, temp directories, file descriptors) and that memory stayed bounded.
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as V8 from "node:v8"
import * as Vm from "node:vm"
import { inject } from "vitest"
import { spawnerProcess } from "../../src/internal/spawner.js"
import { isRunning, procStat, runs, tempDir } from "../kit/qemu.js"

/**
 * The run's seed, chosen once in test/globalSetup.ts: `RELIABILITY_SEED` when set, otherwise a
 * fresh one, printed at the start of the run so that a failing run can be repeated.
 */
export const seed: number = inject("reliabilitySeed")

/** Multiplies the iteration counts: `RELIABILITY_SCALE=10` for a long soak. */
export const scale: number = Math.max(1, Number(process.env.RELIABILITY_SCALE ?? "1") || 1)

export const iterations = (count: number): number => Math.round(count * scale)

export const announceSeed = (file: string) => {
  console.log(`${file}: seed ${seed} (repeat with RELIABILITY_SEED=${seed} npx vitest run test/reliability)`)
}

/** A small deterministic generator (mulberry32), one per test so tests do not disturb each other. */
export interface Random {
  /** An integer in [0, bound). */
  readonly int: (bound: number) => number
  readonly next: () => number
}

export const random = (label: string): Random => {
  let state = seed >>> 0
  for (let i = 0; i < label.length; i++) state = Math.imul(state ^ label.charCodeAt(i), 0x9e3779b1) >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return { next, int: (bound) => Math.floor(next() * bound) }
}

/** A fresh base directory for a test's machines, removed on release. */
export const baseDir: Effect.Effect<string, never, import("effect/Scope").Scope> = tempDir("effect-qemu-rel-")

/** Gone, or dead and waiting to be reaped by someone else: either way it runs no more. */
export const isGone = (pid: number): boolean => !isRunning(pid)

/**
 * The live child processes of this process (each test file runs in its own worker). The spawner,
 * which outlives machines, is not one of them; the QEMUs it started are.
 */
export const liveChildren = (): Array<{ pid: number; comm: string }> => {
  const spawner = spawnerProcess()?.pid
  return Fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    const pid = Number(entry)
    if (pid === spawner) return []
    const stat = procStat(pid)
    return runs(stat) && (stat.ppid === process.pid || stat.ppid === spawner) ? [{ pid, comm: stat.comm }] : []
  })
}

/** This process's open descriptors, with what they point at. */
export const openFds = (): Map<string, string> => {
  const fds = new Map<string, string>()
  for (const fd of Fs.readdirSync("/proc/self/fd")) {
    try {
      fds.set(fd, Fs.readlinkSync(`/proc/self/fd/${fd}`))
    } catch {
      // the descriptor readdir itself used, closed by now
    }
  }
  return fds
}

/**
 * Polls `check` every 20 ms until it returns undefined (all is well) or `within` ms passed;
 * then fails with the last complaint. Sockets and processes go away asynchronously.
 */
export const settle = (check: () => string | undefined, within = 3000): Effect.Effect<void, Error> =>
  Effect.gen(function*() {
    const deadline = Date.now() + within
    while (true) {
      const complaint = check()
      if (complaint === undefined) return
      if (Date.now() > deadline) return yield* Effect.fail(new Error(complaint))
      yield* Effect.sleep("20 millis")
    }
  })

/**
 * Fails unless every descriptor open now was open in `before` (within a settling time). The
 * spawner's channel is the process's, not a machine's.
 */
export const expectNoFdLeak = (before: Map<string, string>) =>
  settle(() => {
    const channel = String(spawnerProcess()?.channelFd)
    const leaked = [...openFds()].filter(([fd, target]) => fd !== channel && before.get(fd) !== target)
    return leaked.length === 0
      ? undefined
      : `descriptors leaked: ${leaked.map(([fd, target]) => `${fd} -> ${target}`).join(", ")}`
  })

/** Fails unless no child process of ours runs (within a settling time). */
export const expectNoChildren = (within = 3000) =>
  settle(() => {
    const children = liveChildren()
    return children.length === 0
      ? undefined
      : `child processes left: ${children.map((child) => `${child.pid} (${child.comm})`).join(", ")}`
  }, within)

/** Fails unless `dir` is empty. */
export const expectEmptyDir = (dir: string) =>
  Effect.suspend(() => {
    const left = Fs.readdirSync(dir)
    return left.length === 0 ? Effect.void : Effect.fail(new Error(`left in ${dir}: ${left.join(", ")}`))
  })

/** Resident memory of a process in bytes (this one by default). */
export const rssBytes = (pid: number = process.pid): number => {
  const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const match = /VmRSS:\s+(\d+) kB/.exec(status)
  return match === null ? 0 : Number(match[1]) * 1024
}

export const MiB = 1024 * 1024

/** A full garbage collection, with V8's `gc` obtained at run time (no `--expose-gc` needed). */
const gc: () => void = (() => {
  V8.setFlagsFromString("--expose-gc")
  return Vm.runInNewContext("gc") as () => void
})()

/**
 * What this process's JavaScript keeps alive, in bytes: heap plus external memory, measured after
 * a full collection. Unlike RSS, it does not saw up and down with the collector, so a leak shows
 * as growth between two measurements.
 */
export const retainedBytes = (): number => {
  gc()
  const usage = process.memoryUsage()
  return usage.heapUsed + usage.external
}
