import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import type * as Net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fdArgs, FdPassError } from "../src/internal/fdArgs.js"
import { ScmRightsError, sendFd } from "../src/internal/ScmRights.js"
import { eventually } from "./kit/qemu.js"

// --- test-local plumbing: QEMU with its monitor on fd 3, and raw QMP lines over it ---

const monitorArgs = [
  "-nodefaults",
  "-display",
  "none",
  "-machine",
  "none",
  "-S",
  "-chardev",
  "socket,id=mon,fd=3",
  "-mon",
  "chardev=mon,mode=control"
]

const exited = (child: ChildProcess): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
  })

// Ask QEMU to quit over its monitor, then SIGKILL it if it has not exited within 5 seconds.
const stopQemu = (child: ChildProcess): Effect.Effect<void> =>
  Effect.gen(function*() {
    const monitor = child.stdio[3] as Net.Socket
    if (!monitor.destroyed && monitor.writable) monitor.write(JSON.stringify({ execute: "quit" }) + "\n")
    else child.kill("SIGTERM")
    const gone = yield* Effect.timeoutOption(exited(child), "5 seconds")
    if (Option.isNone(gone)) {
      child.kill("SIGKILL")
      yield* Effect.timeoutOption(exited(child), "2 seconds")
    }
    monitor.destroy()
  })

interface QmpReply {
  readonly return?: any
  readonly error?: { readonly class: string; readonly desc: string }
}

interface Vm {
  readonly child: ChildProcess
  readonly monitor: Net.Socket
  readonly execute: (command: string, args?: Record<string, unknown>) => Effect.Effect<QmpReply, Error>
}

const launchVm = (
  extra: { readonly args?: ReadonlyArray<string>; readonly stdio?: ReadonlyArray<number> } = {}
): Effect.Effect<Vm, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.async<ChildProcess, Error>((resume) => {
        const child = spawn("qemu-system-x86_64", [...monitorArgs, ...(extra.args ?? [])], {
          stdio: ["ignore", "ignore", "inherit", "pipe", ...(extra.stdio ?? [])]
        })
        child.once("spawn", () => resume(Effect.succeed(child)))
        child.once("error", (error) => resume(Effect.fail(error)))
      }),
      stopQemu
    )
    const monitor = child.stdio[3] as Net.Socket
    const replies = yield* Queue.unbounded<QmpReply>()
    let pending = ""
    const onData = (chunk: Buffer) => {
      pending += chunk.toString("utf8")
      let newline: number
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline).trim()
        pending = pending.slice(newline + 1)
        if (line.length === 0) continue
        const message = JSON.parse(line)
        if (!("event" in message)) Queue.unsafeOffer(replies, message)
      }
    }
    monitor.on("data", onData)
    // QEMU resets the connection when it quits; that is the end of the test, not a failure.
    monitor.on("error", () => {})
    const next = Effect.timeoutFail(Queue.take(replies), {
      duration: "10 seconds",
      onTimeout: () => new Error("QEMU sent no QMP reply within 10 seconds")
    })
    const execute = (command: string, args?: Record<string, unknown>) =>
      Effect.sync(() =>
        monitor.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + "\n")
      )
        .pipe(Effect.zipRight(next))
    const greeting: any = yield* next
    expect(greeting.QMP).toBeDefined()
    expect(yield* execute("qmp_capabilities")).toEqual({ return: {} })
    return { child, monitor, execute }
  })

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-qemu-fdpass-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const openFile = (file: string) =>
  Effect.acquireRelease(
    Effect.sync(() => fs.openSync(file, "w+")),
    (fd) => Effect.sync(() => fs.closeSync(fd))
  )

// What QEMU's descriptor `fd` points at, read from QEMU's own fd table.
const qemuFdTarget = (vm: Vm, fd: number): string => fs.readlinkSync(`/proc/${vm.child.pid}/fd/${fd}`)

describe("fdArgs", () => {
  it("maps descriptors onto consecutive child slots and names the child numbers in -add-fd", () => {
    const result = fdArgs({
      fds: [{ fd: 21, set: 1, opaque: "disk" }, { fd: 9, set: 2 }, { fd: 30, set: 2, opts: "future=on" }],
      firstChildFd: 4
    })
    expect(result).toEqual(Either.right({
      stdio: [21, 9, 30],
      args: ["-add-fd", "fd=4,set=1,opaque=disk", "-add-fd", "fd=5,set=2", "-add-fd", "fd=6,set=2,future=on"],
      childFds: [4, 5, 6]
    }))
  })

  it("rejects what QEMU would refuse or misread, naming the entry and field to fix", () => {
    const fieldOf = (result: ReturnType<typeof fdArgs>) =>
      Either.match(result, {
        onLeft: (error) => {
          expect(error).toBeInstanceOf(FdPassError)
          return `${error.index}:${error.field}`
        },
        onRight: () => "accepted"
      })
    expect(fieldOf(fdArgs({ fds: [{ fd: -1, set: 1 }], firstChildFd: 3 }))).toBe("0:fd")
    expect(fieldOf(fdArgs({ fds: [{ fd: 1.5, set: 1 }], firstChildFd: 3 }))).toBe("0:fd")
    expect(fieldOf(fdArgs({ fds: [{ fd: 7, set: 1 }, { fd: 7, set: 2 }], firstChildFd: 3 }))).toBe("1:fd")
    expect(fieldOf(fdArgs({ fds: [{ fd: 7, set: -2 }], firstChildFd: 3 }))).toBe("0:set")
    expect(fieldOf(fdArgs({ fds: [{ fd: 7, set: 1, opaque: "a,b" }], firstChildFd: 3 }))).toBe("0:opaque")
    expect(fieldOf(fdArgs({ fds: [{ fd: 7, set: 1, opts: "fd=9" }], firstChildFd: 3 }))).toBe("0:opts")
    expect(fieldOf(fdArgs({ fds: [{ fd: 7, set: 1 }], firstChildFd: 2 }))).toBe("-1:firstChildFd")
    const error = Either.getLeft(fdArgs({ fds: [{ fd: 7, set: 1, opaque: "a,b" }], firstChildFd: 3 }))
    expect(Option.getOrThrow(error).message).toContain("comma")
  })
})

describe("launch-time fds (-add-fd)", () => {
  it.scopedLive("query-fdsets shows fd set 1 holding the passed file with its opaque", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "launch.img")
      const fd = yield* openFile(file)
      const mapped = yield* Either.match(fdArgs({ fds: [{ fd, set: 1, opaque: "launch-file" }], firstChildFd: 4 }), {
        onLeft: Effect.fail,
        onRight: Effect.succeed
      })
      const vm = yield* launchVm({ args: mapped.args, stdio: mapped.stdio })
      const reply = yield* vm.execute("query-fdsets")
      expect(reply.return).toHaveLength(1)
      const [fdset] = reply.return
      expect(fdset["fdset-id"]).toBe(1)
      expect(fdset.fds).toHaveLength(1)
      expect(fdset.fds[0].opaque).toBe("launch-file")
      expect(qemuFdTarget(vm, fdset.fds[0].fd)).toBe(file)
    }))
})

describe("runtime fds over QMP (sendFd)", () => {
  it.scopedLive("getfd names a sent fd, closefd releases it, closefd of a name never sent is a GenericError", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const fd = yield* openFile(path.join(dir, "runtime.img"))
      const vm = yield* launchVm()
      yield* sendFd({ socket: vm.monitor, fd })
      expect(yield* vm.execute("getfd", { fdname: "myfd" })).toEqual({ return: {} })
      expect(yield* vm.execute("closefd", { fdname: "myfd" })).toEqual({ return: {} })
      const never = yield* vm.execute("closefd", { fdname: "never-sent" })
      expect(never.error?.class).toBe("GenericError")
    }))

  it.scopedLive("getfd without sendFd fails: the descriptor really travels as SCM_RIGHTS", () =>
    Effect.gen(function*() {
      const vm = yield* launchVm()
      const reply = yield* vm.execute("getfd", { fdname: "myfd" })
      expect(reply.error?.class).toBe("GenericError")
      expect(reply.error?.desc).toContain("SCM_RIGHTS")
    }))

  it.scopedLive("add-fd puts a sent fd into an fd set that query-fdsets shows", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "added.img")
      const fd = yield* openFile(file)
      const vm = yield* launchVm()
      yield* sendFd({ socket: vm.monitor, fd })
      const added = yield* vm.execute("add-fd", { "fdset-id": 2, opaque: "runtime-file" })
      expect(added.return["fdset-id"]).toBe(2)
      const sets = yield* vm.execute("query-fdsets")
      expect(sets.return).toEqual([{ "fdset-id": 2, fds: [{ fd: added.return.fd, opaque: "runtime-file" }] }])
      expect(qemuFdTarget(vm, added.return.fd)).toBe(file)
    }))

  it.scopedLive("a missing python3 is a HelperMissing error that says what to install", () =>
    Effect.gen(function*() {
      const vm = yield* launchVm()
      const error = yield* Effect.flip(sendFd({ socket: vm.monitor, fd: 0, python: "/nonexistent/python3" }))
      expect(error).toBeInstanceOf(ScmRightsError)
      expect(error.reason).toBe("HelperMissing")
      expect(error.message).toContain("install python3")
      expect(yield* vm.execute("query-version")).toHaveProperty("return")
    }))

  it.scopedLive("a helper that hangs is killed at the timeout and the monitor keeps working", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const pidFile = path.join(dir, "helper.pid")
      const fakePython = path.join(dir, "python3")
      fs.writeFileSync(fakePython, `#!/bin/sh\necho $$ > ${pidFile}\nexec sleep 30\n`, { mode: 0o755 })
      const vm = yield* launchVm()
      const started = Date.now()
      const error = yield* Effect.flip(
        sendFd({ socket: vm.monitor, fd: 0, python: fakePython, timeout: "300 millis" })
      )
      expect(error.reason).toBe("Timeout")
      expect(Date.now() - started).toBeLessThan(3000)
      const helperPid = Number(fs.readFileSync(pidFile, "utf8").trim())
      yield* eventually("the timed-out helper is gone", () => !fs.existsSync(`/proc/${helperPid}`))
      expect(yield* vm.execute("query-version")).toHaveProperty("return")
    }))
})
