import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    /** The reliability suite's seed, one per run: `RELIABILITY_SEED` or a fresh one. */
    readonly reliabilitySeed: number
  }
}

// The suite checks its own leaks, and only its own: other programs on the host (another test run,
// a VM someone started by hand) may run QEMU and use the temp directory at the same time.
// - Every temp entry of this run lives under one run directory, made the workers' TMPDIR.
// - Every process this run starts inherits a marker in its environment; a QEMU that outlives the
//   run keeps it even when it was orphaned to init.
const markerName = "EFFECT_QEMU_TEST_RUN"

const qemuPidsOfRun = (marker: string): Array<string> => {
  const wanted = `${markerName}=${marker}`
  const found: Array<string> = []
  for (const pid of Fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue
    try {
      if (!Fs.readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("qemu-")) continue
      const environ = Fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")
      if (environ.includes(wanted)) found.push(pid)
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found
}

let runDir = ""

export const setup = (project: TestProject) => {
  // Short: UNIX socket paths made below it must stay within 107 bytes.
  runDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "eqr-"))
  process.env.TMPDIR = runDir
  process.env[markerName] = runDir
  const given = process.env.RELIABILITY_SEED
  const seed = given !== undefined && given.length > 0 ? Number(given) : Math.floor(Math.random() * 2 ** 31)
  if (!Number.isSafeInteger(seed)) throw new Error(`RELIABILITY_SEED must be an integer, got "${given}"`)
  project.provide("reliabilitySeed", seed)
  console.log(`reliability seed: ${seed} (repeat with RELIABILITY_SEED=${seed})`)
}

export const teardown = () => {
  const leaked = qemuPidsOfRun(runDir)
  // Tools keep caches in TMPDIR too (tsx); only the library's and the tests' own entries count.
  const leftovers = Fs.readdirSync(runDir).filter((entry) => entry.startsWith("effect-qemu-"))
  Fs.rmSync(runDir, { recursive: true, force: true })
  for (const pid of leaked) {
    try {
      process.kill(Number(pid), "SIGKILL")
    } catch {
      // already gone
    }
  }
  if (leaked.length > 0) {
    throw new Error(`QEMU processes of this test run left running: ${leaked.join(", ")}`)
  }
  if (leftovers.length > 0) {
    throw new Error(`temp entries left behind by this test run: ${leftovers.join(", ")}`)
  }
}
