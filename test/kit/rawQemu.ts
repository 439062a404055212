/**
 * Test kit: a QEMU process spawned directly, with its QMP monitor on a socketpair at fd 3.
 * Used by the tests of the QMP client, below the Machine layer.
 */
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import type { Duplex } from "node:stream"

export const qemuBinary = process.env.QEMU_BINARY ?? "qemu-system-x86_64"

export interface RawQemu {
  readonly child: ChildProcess
  readonly pid: number
  readonly monitor: Duplex
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const waitExit = (child: ChildProcess) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode })
      return
    }
    child.once("exit", (code, signal) => resolve({ code, signal }))
  })

/** Spawns `qemu-system-x86_64 -M none -nodefaults` with QMP at fd 3; SIGKILLs and reaps it on release. */
export const rawQemu = (extraArgs: ReadonlyArray<string> = []) =>
  Effect.acquireRelease(
    Effect.sync((): RawQemu => {
      const child = spawn(qemuBinary, [
        "-M",
        "none",
        "-nodefaults",
        "-display",
        "none",
        "-chardev",
        "socket,id=mon,fd=3",
        "-mon",
        "chardev=mon,mode=control",
        ...extraArgs
      ], { stdio: ["ignore", "ignore", "pipe", "pipe"] })
      const exited = waitExit(child)
      return { child, pid: child.pid!, monitor: child.stdio[3] as Duplex, exited }
    }),
    (qemu) =>
      Effect.promise(async () => {
        if (qemu.child.exitCode === null && qemu.child.signalCode === null) {
          try {
            process.kill(qemu.pid, "SIGCONT")
          } catch {
            // already gone
          }
          qemu.child.kill("SIGKILL")
        }
        await Promise.race([qemu.exited, new Promise((resolve) => setTimeout(resolve, 5000))])
      })
  )

/** Whether a process with this pid exists. */
export const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
