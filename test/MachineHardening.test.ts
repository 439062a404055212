/**
 * The machine's promises under clumsy or hostile input: every bound holds (long, odd and invalid
 * timeouts), a hard stop is at once, a machine without QMP still shuts down gracefully, nothing a
 * forking wrapper starts outlives the machine, option strings are escaped, and a machine removes
 * only what it created.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Machine from "../src/Machine.js"
import { eventually, isRunning, noneArgs, procStat, tempDir } from "./kit/qemu.js"

/** The QEMU processes below `ancestor` (a wrapper's children), by walking /proc. */
const qemuBelow = (ancestor: number): Array<number> =>
  Fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).map(Number).filter((pid) => {
    if (!procStat(pid)?.comm.startsWith("qemu-system")) return false
    for (let at = procStat(pid)?.ppid; at !== undefined && at > 1; at = procStat(at)?.ppid) {
      if (at === ancestor) return true
    }
    return false
  })

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.either(effect), (result) => result).pipe(
    Effect.timed,
    Effect.map(([elapsed, result]) => [result, elapsed.value._tag === "Millis" ? elapsed.value.millis : 0] as const)
  )

describe("Machine bounds", () => {
  it.scopedLive("a 30-day shutdownTimeout and wait timeout do not kill QEMU at once", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs, shutdownTimeout: "30 days" })
      const waiting = yield* Effect.fork(vm.wait({ timeout: "30 days" }))
      yield* Effect.sleep("300 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiting)))
      assert.isTrue(isRunning(vm.pid))
      yield* Fiber.interrupt(waiting)
      const status = (yield* vm.execute("query-status")) as { status: string }
      assert.strictEqual(status.status, "running")
    }))

  it.live("zero, negative, NaN and garbage durations are ConfigErrors naming the field, before spawning", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [Record<string, unknown>, string]> = [
        [{ launchTimeout: 0 }, "launchTimeout"],
        [{ shutdownTimeout: "-5 seconds" }, "shutdownTimeout"],
        [{ launchTimeout: NaN }, "launchTimeout"],
        [{ qmpOptions: { commandTimeout: "banana" } }, "qmpOptions.commandTimeout"],
        [{ qmpOptions: { greetingTimeout: -1 } }, "qmpOptions.greetingTimeout"]
      ]
      for (const [extra, field] of cases) {
        const error = yield* Effect.flip(Effect.scoped(Machine.make({ args: noneArgs, ...extra } as never)))
        assert.strictEqual(error._tag, "MachineConfigError", field)
        assert.strictEqual((error as { field: string }).field, field)
      }
    }))

  it("config durations are typed as Duration.DurationInput: a misspelt unit does not compile", () => {
    const typed = () => [
      // @ts-expect-error "secnds" is no unit
      Machine.make({ launchTimeout: "30 secnds" }),
      // @ts-expect-error a symbol is no duration
      Machine.make({ shutdownTimeout: Symbol() }),
      Machine.make({ launchTimeout: "30 seconds", shutdownTimeout: 500, qmpOptions: { decodeReplies: true } })
    ]
    assert.isFunction(typed)
  })

  it.scopedLive("shutdown and wait with a bad timeout fail typed, and the machine still runs", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      const bad = yield* Effect.flip(vm.shutdown({ timeout: "banana" as never }))
      assert.strictEqual(bad._tag, "MachineConfigError")
      assert.include(bad.message, "banana")
      const negative = yield* Effect.flip(vm.wait({ timeout: -1 }))
      assert.strictEqual(negative._tag, "MachineConfigError")
      assert.isTrue(yield* vm.isRunning)
    }))

  it.scopedLive("kill during a graceful shutdown of a stuck QEMU kills it at once", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      process.kill(vm.pid, "SIGSTOP")
      const graceful = yield* Effect.fork(vm.shutdown({ timeout: "20 seconds" }))
      yield* Effect.sleep("100 millis")
      const [, elapsed] = yield* timed(vm.kill)
      assert.isBelow(elapsed, 5_000)
      assert.isFalse(isRunning(vm.pid))
      // The graceful stop ends as the kill asked, well before its own 20 s bound.
      const outcome = yield* Fiber.join(graceful).pipe(Effect.either)
      assert.strictEqual(outcome._tag, "Right")
    }))
})

describe("Graceful shutdown without QMP", () => {
  it.live("with qmp: false, shutdown sends SIGTERM and QEMU exits cleanly at once", () =>
    Effect.gen(function*() {
      const [status, elapsed] = yield* Effect.scoped(Effect.gen(function*() {
        const vm = yield* Machine.make({ args: noneArgs, qmp: false, shutdownTimeout: "20 seconds" })
        const [result, elapsed] = yield* timed(vm.shutdown())
        assert.strictEqual(result._tag, "Right")
        return [yield* vm.exitStatus, elapsed] as const
      }))
      assert.isBelow(elapsed, 5_000)
      // QEMU's SIGTERM handler exits with 0; a QEMU caught before it installed one dies of the
      // SIGTERM itself. Either way it was asked, not killed.
      const { code, signal } = Option.getOrThrow(status)
      assert.isTrue(code === 0 || signal === "SIGTERM", `${code} ${signal}`)
    }))

  it.scopedLive("after the QMP session is gone, shutdown falls back to SIGTERM", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs, shutdownTimeout: "20 seconds" })
      yield* vm.qmp.close
      const [result, elapsed] = yield* timed(vm.shutdown())
      assert.strictEqual(result._tag, "Right")
      assert.isBelow(elapsed, 5_000)
    }))
})

describe("A forking wrapper", () => {
  const wrapper = ["strace", "-f", "-qq", "-o", "/dev/null"]

  it.scopedLive("kill leaves no QEMU behind (the whole process group is signalled)", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs, wrapper, parentDeathSignal: false })
      yield* vm.execute("query-status")
      const children = qemuBelow(vm.pid)
      assert.lengthOf(children, 1)
      yield* vm.kill
      yield* eventually("QEMU dies with its killed wrapper", () => !isRunning(children[0]))
    }))

  it.scopedLive("a timed-out shutdown leaves no QEMU behind", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs, wrapper })
      yield* vm.execute("query-status")
      const [qemu] = qemuBelow(vm.pid)
      process.kill(qemu, "SIGSTOP")
      const error = yield* Effect.flip(vm.shutdown({ timeout: "300 millis" }))
      assert.strictEqual(error._tag, "AbnormalShutdown")
      yield* eventually("QEMU dies with the timed-out shutdown", () => !isRunning(qemu))
    }))

  it.scopedLive("QEMU below the wrapper carries the parent-death signal too", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs, wrapper })
      const setprivs = vm.commandLine.filter((arg) => arg.endsWith("setpriv"))
      assert.lengthOf(setprivs, 2)
      // The second one runs right before QEMU, under the wrapper.
      assert.isTrue(vm.commandLine.indexOf("strace") < vm.commandLine.lastIndexOf(setprivs[1]))
      const [qemu] = qemuBelow(vm.pid)
      // Killing the wrapper alone (as the controller's death does) takes QEMU with it.
      process.kill(vm.pid, "SIGKILL")
      yield* eventually("QEMU dies with its wrapper", () => !isRunning(qemu))
    }))
})

describe("Configuration that would escape the machine", () => {
  it.live("-daemonize is refused with a MachineConfigError naming the argument", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Machine.make({ args: [...noneArgs, "-daemonize"] })))
      assert.strictEqual(error._tag, "MachineConfigError")
      assert.strictEqual((error as { field: string }).field, "args.3")
      assert.include(error.message, "-daemonize")
    }))

  it.scopedLive("a FIFO as console.logFile is refused at once instead of hanging the launch", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const fifo = Path.join(dir, "console.fifo")
      const { execFileSync } = yield* Effect.promise(() => import("node:child_process"))
      execFileSync("mkfifo", [fifo])
      const error = yield* Effect.flip(Machine.make({ args: noneArgs, console: { logFile: fifo } }))
      assert.strictEqual(error._tag, "MachineConfigError")
      assert.strictEqual((error as { field: string }).field, "console.logFile")
    }))
})

describe("Option strings and sockets", () => {
  it.scopedLive("a comma in the socket directory is escaped: the monitor works", () =>
    Effect.gen(function*() {
      const base = yield* tempDir("eq,comma-")
      const vm = yield* Machine.make({ args: noneArgs, monitor: { _tag: "Unix" }, sockDir: base, name: "c" })
      const status = (yield* vm.execute("query-status")) as { status: string }
      assert.strictEqual(status.status, "running")
    }))

  it.scopedLive("a socket path that smuggles options is taken literally and leaves nothing behind", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const path = Path.join(dir, "m.sock,server=on,wait=off")
      yield* Effect.scoped(Effect.gen(function*() {
        const vm = yield* Machine.make({ args: noneArgs, monitor: { _tag: "Unix", path }, launchTimeout: "10 seconds" })
        yield* vm.execute("query-status")
      }))
      assert.deepStrictEqual(Fs.readdirSync(dir), [])
    }))

  it.scopedLive("releasing a machine leaves alone a socket another listener made at the same path", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const path = Path.join(dir, "twin-qmp.sock")
      const other = Net.createServer()
      yield* Effect.addFinalizer(() => Effect.sync(() => other.close()))
      yield* Effect.scoped(Effect.gen(function*() {
        const vm = yield* Machine.make({ args: noneArgs, monitor: { _tag: "Unix" }, sockDir: dir, name: "twin" })
        yield* vm.execute("query-status")
        // The machine stopped listening once QEMU connected; a second machine of the same name
        // in the same sockDir may now listen at the very same path.
        Fs.rmSync(path, { force: true })
        yield* Effect.async<void>((resume) => void other.listen(path, () => resume(Effect.void)))
      }))
      // The first machine is released: the second one's socket is still there.
      assert.isTrue(Fs.existsSync(path))
    }))
})

describe("QEMU's log", () => {
  it.scopedLive("vm.log returns the last MiB of a huge log, not the whole file", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      const logPath = vm.process.logPath
      Fs.appendFileSync(logPath, "x".repeat(8 * 1024 * 1024) + "the end\n")
      const log = yield* vm.log
      assert.isAtMost(log.length, 1024 * 1024)
      assert.isTrue(log.endsWith("the end\n"))
    }))
})
