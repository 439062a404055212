import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import type { TestProject } from "vitest/node"

declare module "vitest" {
  export interface ProvidedContext {
    /** The reliability suite's seed, one per run: `RELIABILITY_SEED` or a fresh one. */
    readonly reliabilitySeed: number
  }
}

// The suite's own leak check: no QEMU process that the tests started may outlive them.
const qemuPids = (): Set<string> => {
  try {
    const out = execFileSync("pgrep", ["-x", "qemu-system-x86"], { encoding: "utf8" })
    return new Set(out.split("\n").filter((line) => line.length > 0))
  } catch {
    return new Set()
  }
}

// ...and no temp directory of the library's (machines, tests, peers) may be left behind.
const tempEntries = (): Set<string> =>
  new Set(Fs.readdirSync(Os.tmpdir()).filter((entry) => entry.startsWith("effect-qemu-")))

let before = new Set<string>()
let tempBefore = new Set<string>()

export const setup = (project: TestProject) => {
  before = qemuPids()
  tempBefore = tempEntries()
  const given = process.env.RELIABILITY_SEED
  const seed = given !== undefined && given.length > 0 ? Number(given) : Math.floor(Math.random() * 2 ** 31)
  if (!Number.isSafeInteger(seed)) throw new Error(`RELIABILITY_SEED must be an integer, got "${given}"`)
  project.provide("reliabilitySeed", seed)
  console.log(`reliability seed: ${seed} (repeat with RELIABILITY_SEED=${seed})`)
}

export const teardown = () => {
  const leaked = [...qemuPids()].filter((pid) => !before.has(pid))
  if (leaked.length > 0) {
    throw new Error(`QEMU processes left running after the test suite: ${leaked.join(", ")}`)
  }
  const leftovers = [...tempEntries()].filter((entry) => !tempBefore.has(entry))
  if (leftovers.length > 0) {
    throw new Error(`temp entries left in ${Os.tmpdir()} after the test suite: ${leftovers.join(", ")}`)
  }
}
