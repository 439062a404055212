/**
 * The bare baseline: the least code that does each scenario's job with `node:child_process` and
 * `node:net` alone — no library, no abstractions, no error recovery beyond what a correct run needs.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { connect, type Socket } from "node:net"
import type { Implementation } from "./impl.js"

const QEMU = process.env.QEMU_BINARY ?? "qemu-system-x86_64"
const ARGS = [
  "-M",
  "none",
  "-nodefaults",
  "-display",
  "none",
  "-vga",
  "none",
  "-chardev",
  "socket,id=mon,fd=3",
  "-mon",
  "chardev=mon,mode=control"
]

interface Vm {
  readonly child: ChildProcess
  readonly exited: Promise<void>
  readonly execute: (command: string) => Promise<unknown>
}

/** Spawns QEMU and resolves once QMP is negotiated (greeting read, `qmp_capabilities` answered). */
const launchVm = (): Promise<Vm> =>
  new Promise((resolve, reject) => {
    // A session of its own, as the library does: Linux's scheduler autogroups by session, and on a
    // loaded machine QEMUs left in the controller's session share one group's slice of the CPU
    // (a fleet of 50 took two to three times longer that way).
    const child = spawn(QEMU, ARGS, { stdio: ["ignore", "ignore", "inherit", "pipe"], detached: true })
    const socket = child.stdio[3] as Socket
    const exited = new Promise<void>((done) => child.once("exit", () => done()))
    const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
    let nextId = 0
    let buffered = ""
    let greeted = false
    const execute = (command: string) =>
      new Promise<unknown>((resolve, reject) => {
        const id = nextId++
        pending.set(id, { resolve, reject })
        socket.write(JSON.stringify({ execute: command, id }) + "\n")
      })
    const vm: Vm = { child, exited, execute }
    socket.setEncoding("utf8")
    socket.on("error", () => {}) // QEMU resets the socket as it quits
    socket.on("data", (chunk: string) => {
      buffered += chunk
      let newline: number
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const message = JSON.parse(buffered.slice(0, newline))
        buffered = buffered.slice(newline + 1)
        if (!greeted) {
          greeted = true
          execute("qmp_capabilities").then(() => resolve(vm), reject)
        } else if (typeof message.id === "number") {
          const request = pending.get(message.id)!
          pending.delete(message.id)
          if ("error" in message) request.reject(new Error(message.error.desc))
          else request.resolve(message.return)
        } // events are ignored
      }
    })
    child.once("error", reject)
    exited.then(() => reject(new Error("QEMU exited before QMP was negotiated")))
  })

/** Sends `quit` and resolves once the process has exited. The reply to `quit` may be lost to the reset. */
const quit = (vm: Vm): Promise<void> => {
  vm.execute("quit").catch(() => {})
  return vm.exited
}

const times = <A>(n: number, f: (i: number) => Promise<A>): Promise<Array<A>> =>
  Promise.all(Array.from({ length: n }, (_, i) => f(i)))

const baseline: Implementation = {
  name: "baseline",

  async launch() {
    const start = performance.now()
    const vm = await launchVm()
    const ms = performance.now() - start
    await quit(vm)
    return { ms }
  },

  async shutdown() {
    const vm = await launchVm()
    const start = performance.now()
    await quit(vm)
    return { ms: performance.now() - start }
  },

  async qmpRoundTrips({ requests, workers }) {
    const vm = await launchVm()
    const start = performance.now()
    await times(workers, async (w) => {
      const share = Math.floor(requests / workers) + (w < requests % workers ? 1 : 0)
      for (let i = 0; i < share; i++) await vm.execute("query-status")
    })
    const ms = performance.now() - start
    await quit(vm)
    return { ms }
  },

  async fleet({ machines }) {
    const start = performance.now()
    await times(machines, async () => {
      const vm = await launchVm()
      await vm.execute("query-status")
      await quit(vm)
    })
    return { ms: performance.now() - start }
  },

  consoleDrain({ socketPath }) {
    return new Promise((resolve, reject) => {
      const start = performance.now()
      let bytes = 0
      const socket = connect(socketPath)
      socket.on("data", (chunk: Buffer) => {
        bytes += chunk.length
      })
      socket.on("end", () => resolve({ ms: performance.now() - start, bytes }))
      socket.on("error", reject)
    })
  },

  async idleMachines({ machines, whileIdle }) {
    const start = performance.now()
    const vms = await times(machines, launchVm)
    const ms = performance.now() - start
    await whileIdle()
    await Promise.all(vms.map(quit))
    return { ms }
  }
}

export default baseline
