/**
 * Per test file: every socket, pipe and temp file the file's tests opened must be closed by the
 * time they are done. Compares this process's descriptors before and after.
 */
import * as Fs from "node:fs"
import { afterAll, beforeAll } from "vitest"
import { stopSpawner } from "../../src/internal/spawner.js"

const watched = (target: string) =>
  target.startsWith("socket:") || target.startsWith("pipe:") || target.includes("effect-qemu")

const snapshot = (): Map<string, string> => {
  const fds = new Map<string, string>()
  for (const fd of Fs.readdirSync("/proc/self/fd")) {
    try {
      const target = Fs.readlinkSync(`/proc/self/fd/${fd}`)
      if (watched(target)) fds.set(fd, target)
    } catch {
      // closed while listing
    }
  }
  return fds
}

let before = new Map<string, string>()

beforeAll(() => {
  before = snapshot()
})

afterAll(async () => {
  // The spawner lives as long as the process launches machines (stopped when idle a while): its
  // channel is the process's, not a test's. Stopped here so that what is left is the tests' own.
  await stopSpawner()
  // Destroyed sockets release their descriptors on a later turn of the event loop.
  let leaked: Array<string> = []
  for (let attempt = 0; attempt < 50; attempt++) {
    const now = snapshot()
    leaked = [...now].filter(([fd, target]) => before.get(fd) !== target).map(([fd, target]) => `${fd} -> ${target}`)
    if (leaked.length === 0) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`descriptors left open by this file's tests: ${leaked.join(", ")}`)
})
