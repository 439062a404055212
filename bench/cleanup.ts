/**
 * Leftover-process safety net. Implementations are expected to shut down every VM they start;
 * this kills whatever they did not, on exit and on SIGINT / SIGTERM / SIGHUP, by walking /proc
 * for descendants of this process. (A SIGKILL of the runner cannot be caught: VMs it owned at
 * that moment survive; find them with `pgrep -x qemu-system-x86`.)
 */
import { readdirSync, readFileSync } from "node:fs"

/** Linux truncates the command name to 15 characters. */
export const QEMU_COMM = "qemu-system-x86"

interface Proc {
  readonly pid: number
  readonly ppid: number
  readonly comm: string
}

const processes = (): Array<Proc> => {
  const result: Array<Proc> = []
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const close = stat.lastIndexOf(")")
      const comm = stat.slice(stat.indexOf("(") + 1, close)
      const ppid = Number(stat.slice(close + 2).split(" ")[1])
      result.push({ pid: Number(entry), ppid, comm })
    } catch {
      // the process is gone
    }
  }
  return result
}

/** Every live descendant of `root` (default: this process). */
export const descendants = (root: number = process.pid): Array<Proc> => {
  const all = processes()
  const found: Array<Proc> = []
  let frontier = new Set([root])
  while (frontier.size > 0) {
    const next = new Set<number>()
    for (const proc of all) {
      if (frontier.has(proc.ppid)) {
        found.push(proc)
        next.add(proc.pid)
      }
    }
    frontier = next
  }
  return found
}

/** SIGKILLs descendant QEMU processes (or all descendants) and returns their pids. */
export const killDescendants = (which: "qemu" | "all" = "qemu"): Array<number> => {
  const victims = descendants().filter((proc) => which === "all" || proc.comm === QEMU_COMM)
  for (const proc of victims) signalQuietly(proc.pid, "SIGKILL")
  return victims.map((proc) => proc.pid)
}

const signalQuietly = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(pid, signal)
  } catch {
    // already gone
  }
}

let installed = false

/** Kill leftover QEMU descendants when this process exits, and every descendant on a signal. */
export const installCleanup = (): void => {
  if (installed) return
  installed = true
  process.on("exit", () => {
    const leaked = killDescendants("qemu")
    if (leaked.length > 0) process.stderr.write(`bench: killed ${leaked.length} leftover QEMU process(es)\n`)
  })
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      // Freeze the helper processes first so none can spawn a VM that would then outlive them,
      // kill the VMs while they are still our descendants, then everything else.
      for (const proc of descendants()) {
        if (proc.comm !== QEMU_COMM) signalQuietly(proc.pid, "SIGSTOP")
      }
      killDescendants("qemu")
      killDescendants("all")
      process.exit(128 + (signal === "SIGINT" ? 2 : signal === "SIGTERM" ? 15 : 1))
    })
  }
}
