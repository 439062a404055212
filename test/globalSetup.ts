import { execFileSync } from "node:child_process"

// The suite's own leak check: no QEMU process that the tests started may outlive them.
const qemuPids = (): Set<string> => {
  try {
    const out = execFileSync("pgrep", ["-x", "qemu-system-x86"], { encoding: "utf8" })
    return new Set(out.split("\n").filter((line) => line.length > 0))
  } catch {
    return new Set()
  }
}

let before = new Set<string>()

export const setup = () => {
  before = qemuPids()
}

export const teardown = () => {
  const leaked = [...qemuPids()].filter((pid) => !before.has(pid))
  if (leaked.length > 0) {
    throw new Error(`QEMU processes left running after the test suite: ${leaked.join(", ")}`)
  }
}
