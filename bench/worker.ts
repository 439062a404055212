/**
 * Runs one memory-sensitive scenario in a fresh Node process, so that its memory figures are its own:
 * the runner forks this file (with --expose-gc and the tsx loader) once per run and receives one
 * result over IPC.
 *
 * argv: IMPLEMENTATION_MODULE SCENARIO OPTIONS_JSON
 */
import { spawn } from "node:child_process"
import { readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { fileURLToPath, pathToFileURL } from "node:url"
import { installCleanup } from "./cleanup.js"
import type { ImplementationModule } from "./impl.js"

export type WorkerScenario = "fleet" | "console" | "idle" | "launch"

export interface WorkerRequest {
  readonly scenario: WorkerScenario
  readonly machines?: number
  readonly bytes?: number
}

export type WorkerResult = Record<string, number>

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error("worker needs --expose-gc")
  collect()
  collect()
}

/** Peak resident set size of this process so far (VmHWM), in bytes. */
const peakRss = (): number => {
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"))
  if (match === null) throw new Error("VmHWM not found in /proc/self/status")
  return Number(match[1]) * 1024
}

// A fresh process has compiled none of either side's code; the library's reader reaches its
// steady pace only after about a gigabyte has gone through it.
const warmUpPasses = 4

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Starts the fake console peer and resolves once it listens. */
const startPeer = (socketPath: string, bytes: number) =>
  new Promise<{ readonly exited: Promise<void> }>((resolve, reject) => {
    const fromSource = import.meta.url.endsWith(".ts")
    const script = fileURLToPath(new URL(fromSource ? "./console-peer.ts" : "./console-peer.js", import.meta.url))
    const peer = spawn(process.execPath, [
      ...(fromSource ? ["--import", "tsx"] : []),
      script,
      socketPath,
      String(bytes)
    ], {
      stdio: ["ignore", "pipe", "inherit"],
      cwd: fileURLToPath(new URL("..", import.meta.url))
    })
    const exited = new Promise<void>((done) => peer.once("exit", () => done()))
    peer.stdout.setEncoding("utf8")
    peer.stdout.once("data", () => resolve({ exited }))
    peer.once("error", reject)
    exited.then(() => reject(new Error("console peer exited before listening")))
  })

const main = async () => {
  installCleanup()
  const [modulePath, requestJson] = process.argv.slice(2)
  const request = JSON.parse(requestJson) as WorkerRequest
  const impl = ((await import(pathToFileURL(modulePath).href)) as ImplementationModule).default
  let result: WorkerResult
  switch (request.scenario) {
    case "fleet": {
      // Like the scenarios run in the main process, one untimed warm-up run first (a small fleet),
      // so that the timed one does not include compiling the code it runs.
      await impl.fleet({ machines: 5 })
      gc()
      const startRss = process.memoryUsage().rss
      // The controller's CPU (user + system, this process alone) and the longest time the event
      // loop could not run a callback, over the timed fleet only.
      const delay = monitorEventLoopDelay({ resolution: 1 })
      delay.enable()
      const cpu = process.cpuUsage()
      const { ms } = await impl.fleet({ machines: request.machines! })
      const used = process.cpuUsage(cpu)
      delay.disable()
      result = {
        ms,
        cpuMs: (used.user + used.system) / 1000,
        maxStallMs: delay.max / 1e6,
        startRss,
        peakRss: peakRss()
      }
      break
    }
    case "launch": {
      // One launch in a process that has run none of the code yet (only the import is done).
      const { ms } = await impl.launch()
      result = { ms }
      break
    }
    case "console": {
      const bytes = request.bytes!
      const socketPath = join(tmpdir(), `effect-qemu-bench-${process.pid}.sock`)
      // Steady-state throughput: untimed drains first, so that neither side is measured while
      // its code is still being compiled (the fresh process has run none of it yet).
      const drainUntimed = async () => {
        rmSync(socketPath, { force: true })
        const warmUp = await startPeer(socketPath, bytes)
        await impl.consoleDrain({ socketPath, bytes })
        await warmUp.exited
      }
      for (let pass = 0; pass < warmUpPasses; pass++) await drainUntimed()
      // No forced collection here, unlike the other scenarios: after `gc()` V8 paces its
      // collections in a way that costs a process with a larger heap (Effect's) several times
      // more than a bare one for as long as we measured (hundreds of megabytes), which no program
      // that does not call `gc()` ever sees. The RSS figures start from the warmed-up process.
      const startRss = process.memoryUsage().rss
      rmSync(socketPath, { force: true })
      const peer = await startPeer(socketPath, bytes)
      const drained = await impl.consoleDrain({ socketPath, bytes })
      const peak = peakRss()
      await peer.exited
      rmSync(socketPath, { force: true })
      if (drained.bytes !== bytes) throw new Error(`drained ${drained.bytes} bytes, expected ${bytes}`)
      result = { ms: drained.ms, bytes: drained.bytes, startRss, peakRss: peak }
      break
    }
    case "idle": {
      const machines = request.machines!
      gc()
      const rssBefore = process.memoryUsage().rss
      let rssIdle = NaN
      const { ms } = await impl.idleMachines({
        machines,
        whileIdle: async () => {
          await sleep(250)
          gc()
          await sleep(50)
          rssIdle = process.memoryUsage().rss
        }
      })
      result = { ms, rssBefore, rssIdle, perMachine: (rssIdle - rssBefore) / machines }
      break
    }
  }
  await impl.dispose?.()
  process.send!(result, () => process.exit(0))
}

main().catch((error) => {
  process.stderr.write(`bench worker: ${error instanceof Error ? error.stack : String(error)}\n`)
  process.exit(1)
})
