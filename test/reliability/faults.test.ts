/**
 * Faults from outside, with real QEMU: SIGKILL and SIGSTOP of QEMU, a guest flooding an unread
 * console, a fleet launch where one machine fails, and the controlling Node process SIGKILLed.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Machine from "../../src/Machine.js"
import { untyped } from "../../src/QmpCommands.js"
import { floodGuest, floppyBootArgs, writeGuest } from "../kit/guests.js"
import { noneArgs } from "../kit/qemu.js"
import {
  baseDir,
  expectEmptyDir,
  expectNoChildren,
  expectNoFdLeak,
  isGone,
  MiB,
  openFds,
  retainedBytes,
  rssBytes,
  settle
} from "./kit.js"

/** Runs `effect` and returns how long it took, in milliseconds. */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const started = Date.now()
    const result = yield* effect
    return [result, Date.now() - started] as const
  })

describe("QEMU SIGKILLed from outside in the middle of a command", () => {
  it.scopedLive("the pending call and an event wait fail with QmpDisconnected, the exit is reported, the scope closes", () =>
    Effect.gen(function*() {
      const base = yield* baseDir
      const fds = openFds()
      const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
        const vm = yield* Machine.make({ args: noneArgs, baseTempDir: base, name: "victim" })
        // Stopped, QEMU reads no more: the call below is in flight when the SIGKILL lands.
        process.kill(vm.pid, "SIGSTOP")
        const call = yield* Effect.fork(vm.execute("query-status", undefined, { timeout: "30 seconds" }))
        const wait = yield* Effect.fork(vm.waitEvent(untyped("NEVER"), { timeout: "30 seconds" }))
        // Both forked fibers run (the request is written, the waiter registered) before this one resumes.
        yield* Effect.yieldNow()
        process.kill(vm.pid, "SIGKILL")
        const [callError, elapsed] = yield* timed(Effect.flip(Fiber.join(call)))
        assert.strictEqual(callError._tag, "QmpDisconnected")
        assert.include(callError.message, "query-status")
        assert.isBelow(elapsed, 5000)
        const waitError = yield* Effect.flip(Fiber.join(wait))
        assert.strictEqual(waitError._tag, "QmpDisconnected")
        // Later calls fail at once rather than wait for their timeout.
        const [later, laterElapsed] = yield* timed(Effect.flip(vm.execute("query-status")))
        assert.strictEqual(later._tag, "QmpDisconnected")
        assert.isBelow(laterElapsed, 1000)
        yield* vm.process.waitExit("5 seconds")
        assert.deepStrictEqual(Option.getOrThrow(yield* vm.exitStatus), { code: null, signal: "SIGKILL" })
        assert.isFalse(yield* vm.isRunning)
        // A shutdown or wait now has nothing left to do and returns promptly.
        const [, waited] = yield* timed(vm.wait({ timeout: "5 seconds" }))
        assert.isBelow(waited, 1000)
        return vm.pid
      })))
      assert.isTrue(Exit.isSuccess(exit), Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "")
      if (Exit.isSuccess(exit)) assert.isTrue(isGone(exit.value))
      yield* expectEmptyDir(base)
      yield* expectNoChildren(0)
      yield* expectNoFdLeak(fds)
    }))
})

describe("QEMU SIGSTOPped", () => {
  it.scopedLive("a QMP call with a timeout fails in time; graceful shutdown ends in AbnormalShutdown and reaps", () =>
    Effect.gen(function*() {
      const base = yield* baseDir
      const vm = yield* Machine.make({ args: noneArgs, baseTempDir: base, name: "frozen" })
      process.kill(vm.pid, "SIGSTOP")
      const [timeout, callElapsed] = yield* timed(
        Effect.flip(vm.execute("query-status", undefined, { timeout: "300 millis" }))
      )
      assert.strictEqual(timeout._tag, "QmpTimeout")
      assert.isAtLeast(callElapsed, 290)
      assert.isBelow(callElapsed, 1500)
      const [error, elapsed] = yield* timed(Effect.flip(vm.shutdown({ timeout: "1 second" })))
      assert.strictEqual(error._tag, "AbnormalShutdown")
      assert.strictEqual(error._tag === "AbnormalShutdown" && error.signal, "SIGKILL")
      assert.isAtLeast(elapsed, 990)
      assert.isBelow(elapsed, 4000)
      assert.isTrue(isGone(vm.pid))
      assert.deepStrictEqual(Option.getOrThrow(yield* vm.exitStatus), { code: null, signal: "SIGKILL" })
    }))

  it.scopedLive("releasing the scope of a stopped QEMU is bounded by shutdownTimeout and leaves nothing", () =>
    Effect.gen(function*() {
      const base = yield* baseDir
      const [pid, elapsed] = yield* timed(Effect.scoped(Effect.gen(function*() {
        const vm = yield* Machine.make({ args: noneArgs, baseTempDir: base, shutdownTimeout: "700 millis" })
        process.kill(vm.pid, "SIGSTOP")
        return vm.pid
      })))
      assert.isBelow(elapsed, 4000)
      assert.isTrue(isGone(pid))
      yield* expectEmptyDir(base)
    }))
})

describe("A QEMU that never opens its monitor", () => {
  it.scopedLive("the launch fails with Timeout at launchTimeout, the process is killed, nothing is left", () =>
    Effect.gen(function*() {
      const base = yield* baseDir
      // The wrapper runs in QEMU's place and never execs it: a launch that hangs.
      const [error, elapsed] = yield* timed(Effect.flip(Effect.scoped(Machine.make({
        args: noneArgs,
        baseTempDir: base,
        wrapper: ["sh", "-c", "exec sleep 60"],
        launchTimeout: "500 millis"
      }))))
      assert.strictEqual(error._tag, "LaunchError")
      assert.strictEqual(error._tag === "LaunchError" && error.reason, "Timeout")
      assert.isAtLeast(elapsed, 490)
      assert.isBelow(elapsed, 3000)
      yield* expectNoChildren(0)
      yield* expectEmptyDir(base)
    }))
})

describe("A guest flooding an unread console (drain: true)", () => {
  it.scopedLive("memory stays bounded, QEMU keeps answering QMP, and shutdown completes", () =>
    Effect.gen(function*() {
      const base = yield* baseDir
      const image = yield* writeGuest(base, floodGuest("flood ".repeat(10)))
      const bufferBytes = 32 * 1024
      const vm = yield* Machine.make({
        args: floppyBootArgs(image),
        baseTempDir: base,
        name: "flood",
        console: { drain: true, bufferBytes }
      })
      yield* vm.console.waitFor("flood flood", { timeout: "20 seconds" })
      const qemuBefore = rssBytes(vm.pid)
      // The drain makes garbage as fast as the guest prints, so RSS saws with the collector; a leak
      // shows as growth of what survives a full collection, measured once the flood runs and at its end.
      yield* Effect.sleep("500 millis")
      const retainedBefore = retainedBytes()
      let slowest = 0
      let calls = 0
      let rssPeak = 0
      const until = Date.now() + 5000
      while (Date.now() < until) {
        const [status, elapsed] = yield* timed(vm.execute("query-status", undefined, { timeout: "2 seconds" }))
        assert.strictEqual(status.status, "running")
        slowest = Math.max(slowest, elapsed)
        calls++
        rssPeak = Math.max(rssPeak, rssBytes())
        yield* Effect.sleep("50 millis")
      }
      const retainedGrowth = retainedBytes() - retainedBefore
      const recent = yield* vm.console.recent
      const qemuGrowth = rssBytes(vm.pid) - qemuBefore
      const mib = (bytes: number) => (bytes / MiB).toFixed(1)
      console.log(
        `flood: ${calls} query-status calls, slowest ${slowest} ms; retained heap growth ${
          mib(retainedGrowth)
        } MiB, node RSS peak ${mib(rssPeak)} MiB; QEMU RSS growth ${mib(qemuGrowth)} MiB`
      )
      assert.isAtMost(Buffer.byteLength(recent), bufferBytes)
      // The guest really floods: the buffer is full of its output.
      assert.isAtLeast(Buffer.byteLength(recent), bufferBytes - 64)
      assert.isBelow(slowest, 1000)
      assert.isBelow(retainedGrowth, 8 * MiB)
      assert.isBelow(qemuGrowth, 32 * MiB)
      const [, elapsed] = yield* timed(vm.shutdown({ timeout: "10 seconds" }))
      assert.isBelow(elapsed, 5000)
      assert.deepStrictEqual(Option.getOrThrow(yield* vm.exitStatus), { code: 0, signal: null })
    }))
})

describe("Structured concurrency", () => {
  it.scopedLive("twenty machines launched in parallel where one fails: the error is its LaunchError, nothing is left", () =>
    Effect.gen(function*() {
      const base = yield* baseDir
      const pids: Array<number> = []
      const [exit, elapsed] = yield* timed(Effect.exit(Effect.scoped(
        Effect.forEach(
          Array.from({ length: 20 }, (_, i) => i),
          (i) =>
            Effect.tap(
              Machine.make({
                args: i === 13 ? [...noneArgs, "-no-such-option"] : noneArgs,
                baseTempDir: base,
                name: `fleet-${i}`
              }),
              (vm) => Effect.sync(() => pids.push(vm.pid))
            ),
          { concurrency: "unbounded" }
        )
      )))
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const failures = [...Cause.failures(exit.cause)]
        assert.strictEqual(failures.length, 1, Cause.pretty(exit.cause))
        const error = failures[0]
        assert.strictEqual(error._tag, "LaunchError")
        assert.strictEqual(error._tag === "LaunchError" && error.reason, "ExitedEarly")
        assert.strictEqual(error._tag === "LaunchError" && error.name, "fleet-13")
        assert.include(error.message, "-no-such-option")
      }
      console.log(`fleet: ${pids.length} of 19 launched before the failure, all released in ${elapsed} ms`)
      for (const pid of pids) assert.isTrue(isGone(pid))
      yield* expectNoChildren(0)
      yield* expectEmptyDir(base)
    }))
})

describe("The controlling Node process SIGKILLed", () => {
  it.scopedLive("its QEMU children die too (parentDeathSignal)", () =>
    Effect.gen(function*() {
      const base = yield* baseDir
      const fixture = Path.join(import.meta.dirname, "..", "fixtures", "controller.ts")
      const pids: Array<number> = []
      // Release: a safety net that kills whatever is left should the assertion below fail.
      const controller = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn(process.execPath, ["--import", "tsx", fixture, base], { stdio: ["ignore", "pipe", "pipe"] })
        ),
        (controller) =>
          Effect.sync(() => {
            controller.kill("SIGKILL")
            for (const pid of pids) if (!isGone(pid)) process.kill(pid, "SIGKILL")
          })
      )
      let stderr = ""
      controller.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString("utf8")
      })
      yield* Effect.async<void, Error>((resume) => {
        let out = ""
        controller.stdout.on("data", (chunk: Buffer) => {
          out += chunk.toString("utf8")
          const lines = out.split("\n").filter((line) => line.length > 0)
          if (lines.length >= 2 && out.endsWith("\n")) {
            pids.push(...lines.map(Number))
            resume(Effect.void)
          }
        })
        controller.once("exit", (code) => resume(Effect.fail(new Error(`controller exited (${code}): ${stderr}`))))
      }).pipe(Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error(`no pids: ${stderr}`) }))
      for (const pid of pids) assert.isFalse(isGone(pid), `QEMU ${pid} runs before the kill`)
      controller.kill("SIGKILL")
      const [, elapsed] = yield* timed(
        settle(() => {
          const alive = pids.filter((pid) => !isGone(pid))
          return alive.length === 0 ? undefined : `QEMU outlived its SIGKILLed controller: ${alive.join(", ")}`
        }, 5000)
      )
      console.log(`controller SIGKILLed: its ${pids.length} QEMU processes were gone after ${elapsed} ms`)
      // Nobody was left to clean up: the machines' temp dirs remain (see RELIABILITY.md); baseDir removes them.
      assert.strictEqual(Fs.readdirSync(base).length, 2)
    }))
})
