/**
 * The controller's side of the spawner (see `spawnerScript`): one helper process per controller,
 * started on the second launch that can use it and stopped when no QEMU of its is left for a
 * while. A launch goes through it only once it is ready; until then (a process's first launches)
 * QEMU is spawned directly, as before.
 *
 * The helper runs under the same parent-death prefix as QEMU would (`setpriv --pdeathsig KILL`),
 * and so does every QEMU it starts: the kernel kills the helper when the controller dies, and
 * QEMU when the helper dies. The helper also kills its QEMUs itself as soon as the controller's
 * end of the channel closes.
 *
 * @internal
 */
import { type ChildProcess, spawn } from "node:child_process"
import { EventEmitter } from "node:events"
import * as Fs from "node:fs"
import type { Socket } from "node:net"
import { spawnerScript } from "./spawnerScript.js"

/**
 * What is started: the argv (wrapper included), the log file for stdout and stderr, and the
 * descriptors from 3 up (`"pipe"`: a socketpair; a number: that descriptor of the controller's,
 * which only a direct spawn can hand over).
 */
export interface SpawnRequest {
  readonly argv: ReadonlyArray<string>
  readonly logPath: string
  readonly extraStdio: ReadonlyArray<"pipe" | number>
}

/** What QemuProcess needs of a child, whether spawned here or by the helper. */
export interface ChildLike {
  readonly pid?: number | undefined
  readonly exitCode: number | null
  readonly signalCode: NodeJS.Signals | null
  readonly stdio: ReadonlyArray<unknown>
  kill(signal: NodeJS.Signals): boolean
  once(event: "exit", listener: (code: number | null, signal: NodeJS.Signals | null) => void): this
  off(event: "exit", listener: (code: number | null, signal: NodeJS.Signals | null) => void): this
}

/** Starts a QEMU; calls back once with the child or with why it could not start. */
export type Spawn = (request: SpawnRequest, done: (result: ChildLike | { readonly failed: string }) => void) => void

/**
 * Spawns in this process: blocks the event loop until the child has exec'd. The child gets a
 * process group of its own: a hard kill reaches whatever a wrapper forked, and a Ctrl-C meant
 * for the controller's terminal does not reach QEMU behind its back.
 */
export const spawnDirect: Spawn = (request, done) => {
  let logFd: number
  try {
    logFd = Fs.openSync(request.logPath, "w", 0o600)
  } catch (cause) {
    return done({ failed: `cannot create the log file ${request.logPath}: ${String(cause)}` })
  }
  let child: ChildProcess
  try {
    child = spawn(request.argv[0], request.argv.slice(1), {
      stdio: ["ignore", logFd, logFd, ...request.extraStdio],
      shell: false,
      detached: true
    })
  } catch (cause) {
    return done({ failed: String(cause) })
  } finally {
    // The child has its own copy of the log descriptor.
    Fs.closeSync(logFd)
  }
  if (child.pid === undefined) {
    child.once("error", (cause) => done({ failed: cause.message }))
    return
  }
  child.on("error", () => {
    // Errors after a successful spawn (e.g. a failed kill) surface through the exit status.
  })
  done(child)
}

/** A QEMU started by the helper: its exit is what the helper reports. */
class RemoteChild extends EventEmitter implements ChildLike {
  exitCode: number | null = null
  signalCode: NodeJS.Signals | null = null
  readonly stdio: Array<Socket | null>

  constructor(readonly pid: number, pipes: number) {
    super()
    this.stdio = Array.from({ length: 3 + pipes }, () => null)
  }

  kill(signal: NodeJS.Signals): boolean {
    try {
      process.kill(this.pid, signal)
      return true
    } catch {
      return false
    }
  }

  exited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exitCode !== null || this.signalCode !== null) return
    this.exitCode = code
    this.signalCode = signal
    this.emit("exit", code, signal)
  }
}

/** Tells whether `process.env` differs from what it was at the last call (or at the first). */
class EnvSnapshot {
  // The helper starts without the controller's NODE_OPTIONS: QEMU gets the whole environment then.
  private last: Record<string, string | undefined> = process.env.NODE_OPTIONS === undefined ? { ...process.env } : {}
  private keys = Object.keys(this.last).length

  changed(): boolean {
    const env = process.env
    let count = 0
    let same = true
    for (const key in env) {
      count++
      if (env[key] !== this.last[key]) {
        same = false
        break
      }
    }
    if (same && count === this.keys) return false
    this.last = { ...env }
    this.keys = Object.keys(this.last).length
    return true
  }
}

interface Pending {
  readonly request: SpawnRequest
  readonly done: Parameters<Spawn>[1]
  child?: RemoteChild
  received: number
}

type HelperMessage =
  | { readonly type: "ready" }
  | { readonly type: "spawned"; readonly id: number; readonly pid: number }
  | { readonly type: "fd"; readonly id: number; readonly index: number }
  | { readonly type: "failed"; readonly id: number; readonly detail: string }
  | { readonly type: "exit"; readonly id: number; readonly code: number | null; readonly signal: NodeJS.Signals | null }

/** How long the helper stays without any QEMU of its before it is stopped. */
const idleMillis = 5000

class Helper {
  ready = false
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly live = new Map<number, RemoteChild>()
  private idleTimer: ReturnType<typeof setTimeout> | undefined

  constructor(private readonly child: ChildProcess, private readonly onGone: () => void) {
    child.on("message", (message: HelperMessage, handle?: Socket) => this.receive(message, handle))
    child.once("exit", () => this.gone())
    child.on("error", () => {})
  }

  spawn: Spawn = (request, done) => {
    const id = this.nextId++
    this.pending.set(id, { request, done, received: 0 })
    this.touch()
    this.child.send({
      type: "spawn",
      id,
      argv: request.argv,
      logPath: request.logPath,
      pipes: request.extraStdio.length,
      // The environment the helper holds from the last time, unless the controller's has changed.
      env: this.env.changed() ? process.env : undefined,
      cwd: process.cwd()
    })
  }

  private readonly env = new EnvSnapshot()

  private receive(message: HelperMessage, handle: Socket | undefined): void {
    switch (message.type) {
      case "ready":
        this.ready = true
        this.touch()
        return
      case "spawned": {
        const pending = this.pending.get(message.id)
        if (pending === undefined) return
        pending.child = new RemoteChild(message.pid, pending.request.extraStdio.length)
        this.live.set(message.id, pending.child)
        return this.complete(message.id, pending)
      }
      case "fd": {
        const pending = this.pending.get(message.id)
        if (pending?.child === undefined || handle === undefined) {
          handle?.destroy()
          return
        }
        pending.child.stdio[3 + message.index] = handle
        pending.received++
        return this.complete(message.id, pending)
      }
      case "failed": {
        const pending = this.pending.get(message.id)
        this.pending.delete(message.id)
        this.touch()
        return pending?.done({ failed: message.detail })
      }
      case "exit": {
        const child = this.live.get(message.id)
        this.live.delete(message.id)
        this.touch()
        return child?.exited(message.code, message.signal)
      }
    }
  }

  private complete(id: number, pending: Pending): void {
    if (pending.child === undefined || pending.received < pending.request.extraStdio.length) return
    this.pending.delete(id)
    pending.done(pending.child)
  }

  /** Keeps the controller alive while a QEMU of the helper's runs or starts; stops the helper once idle. */
  private touch(): void {
    const busy = this.pending.size > 0 || this.live.size > 0
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer)
    this.idleTimer = undefined
    if (busy) {
      this.child.ref()
      this.child.channel?.ref()
      return
    }
    this.child.unref()
    this.child.channel?.unref()
    if (this.ready) {
      this.idleTimer = setTimeout(() => this.stop(), idleMillis)
      this.idleTimer.unref()
    }
  }

  process(): { readonly pid: number; readonly channelFd: number | undefined } | undefined {
    if (this.child.pid === undefined || this.child.exitCode !== null || this.child.signalCode !== null) return undefined
    return { pid: this.child.pid, channelFd: (this.child.channel as { fd?: number } | null | undefined)?.fd }
  }

  stop(onExit?: () => void): void {
    this.ready = false
    if (onExit !== undefined) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) onExit()
      else this.child.once("exit", () => onExit())
    }
    if (this.child.connected) this.child.disconnect()
  }

  /** The helper exited: whatever it had not started failed; what it had started died with it. */
  private gone(): void {
    this.ready = false
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer)
    for (const pending of this.pending.values()) {
      pending.child?.stdio.forEach((socket) => socket?.destroy())
      pending.done({ failed: "the spawner process exited before QEMU was started" })
    }
    this.pending.clear()
    // Each QEMU ran under the parent-death signal of the helper: the kernel has killed it.
    for (const child of this.live.values()) child.exited(null, "SIGKILL")
    this.live.clear()
    this.onGone()
  }
}

let helper: Helper | undefined
let failures = 0
let wanted = false

const start = (prefix: ReadonlyArray<string>): void => {
  const argv = [...prefix, process.execPath, "-e", spawnerScript]
  // The controller's Node options (a loader, a profiler) are not the helper's business.
  const { NODE_OPTIONS: _, ...env } = process.env
  let child: ChildProcess
  try {
    child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "ignore", "inherit", "ipc"], env, detached: true })
  } catch {
    failures++
    return
  }
  const started = new Helper(child, () => {
    if (!started.ready && helper === started) failures++
    if (helper === started) helper = undefined
  })
  helper = started
  child.unref()
  child.channel?.unref()
}

/**
 * The helper's spawn when the helper is ready and can start this request; `undefined` otherwise
 * (the caller spawns directly this time), after starting the helper if none runs yet and this is
 * not the process's first launch. `prefix` is
 * the parent-death prefix: without one the helper is not used, since nothing would tie its QEMUs
 * to the controller; nor when a descriptor of the controller's must be handed to QEMU.
 */
export const spawner = (
  prefix: ReadonlyArray<string>,
  extraStdio: ReadonlyArray<"pipe" | number>
): Spawn | undefined => {
  if (prefix.length === 0 || failures >= 3 || extraStdio.some((entry) => entry !== "pipe")) return undefined
  if (helper === undefined) {
    // Started by a process's second launch, not its first: a program that launches one machine
    // never pays for the helper, and the first launch does not share the CPU with its start-up.
    if (wanted) start(prefix)
    wanted = true
    return undefined
  }
  return helper.ready ? helper.spawn : undefined
}

/**
 * Stops the helper now, if one runs; the next launch starts another. Resolves once it has
 * exited (its QEMUs, if any were left, killed with it).
 */
export const stopSpawner = (): Promise<void> =>
  new Promise((resolve) => {
    const running = helper
    if (running === undefined) return resolve()
    running.stop(resolve)
  })

/**
 * The running helper's pid and the descriptor of its channel, for checks that tell the helper
 * (which outlives any one machine) from what a machine left behind.
 */
export const spawnerProcess = (): { readonly pid: number; readonly channelFd: number | undefined } | undefined =>
  helper?.process()
