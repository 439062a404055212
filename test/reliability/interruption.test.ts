/**
 * Interruption at a random point: of a launch, of a QMP call, of a shutdown, of a console wait.
 * Each iteration forks the operation, sleeps a seeded random time and interrupts it; then no QEMU
 * may run, the base temp directory must be empty, and (per batch) no descriptor may have leaked.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Machine from "../../src/Machine.js"
import { bannerEchoGuest, floppyBootArgs, writeGuest } from "../kit/guests.js"
import { noneArgs } from "../kit/qemu.js"
import {
  announceSeed,
  baseDir,
  expectEmptyDir,
  expectNoChildren,
  expectNoFdLeak,
  iterations,
  openFds,
  random
} from "./kit.js"

announceSeed("interruption")

/** Forks `program`, lets it run `delayMs`, interrupts it and waits until it is fully released. */
const interruptAfter = <A, E>(program: Effect.Effect<A, E>, delayMs: number) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(program)
    yield* Effect.sleep(Duration.millis(delayMs))
    return yield* Fiber.interrupt(fiber)
  })

/** Counts how iterations ended, so a test can show that the random points landed in every phase. */
const tally = () => {
  const counts = new Map<string, number>()
  return {
    add: (what: string) => counts.set(what, (counts.get(what) ?? 0) + 1),
    get: (what: string) => counts.get(what) ?? 0,
    toString: () => [...counts].map(([what, n]) => `${what}=${n}`).join(" ")
  }
}

const exitKind = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isSuccess(exit) ? "completed" : Exit.isInterrupted(exit) ? "interrupted" : "failed"

describe("Interruption at a random point", () => {
  it.live(
    "of a launch (and a first QMP call) leaves no process, temp dir or descriptor",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const rng = random("launch")
        const dir = yield* baseDir
        const outcomes = tally()
        const monitors = [{ _tag: "Socketpair" as const }, { _tag: "Unix" as const }, { _tag: "Tcp" as const }]
        const total = iterations(120)
        // Warm up: the first launch resolves setpriv and loads code, and opens descriptors that stay.
        yield* Effect.scoped(Machine.make({ args: noneArgs, baseTempDir: dir }))
        const fds = openFds()
        for (let i = 0; i < total; i++) {
          const monitor = monitors[i % monitors.length]
          let phase = "launching"
          yield* interruptAfter(
            Effect.scoped(Effect.gen(function*() {
              const vm = yield* Machine.make({ args: noneArgs, baseTempDir: dir, monitor, name: `launch-${i}` })
              phase = "calling"
              yield* vm.execute("query-status")
              phase = "running"
              return yield* Effect.never
            })),
            rng.int(90)
          )
          outcomes.add(phase)
          yield* expectNoChildren(0)
          yield* expectEmptyDir(dir)
          if (i % 20 === 19) yield* expectNoFdLeak(fds)
        }
        yield* expectNoFdLeak(fds)
        console.log(`launch: ${total} iterations: ${outcomes}`)
        assert.isAbove(outcomes.get("launching"), 0, String(outcomes))
      })),
    120_000
  )

  it.live(
    "of a QMP call leaves the connection answering every later call with its own reply",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const rng = random("qmp-call")
        const dir = yield* baseDir
        const total = iterations(150)
        const vm = yield* Machine.make({ args: noneArgs, baseTempDir: dir, name: "calls" })
        const commands = ["query-status", "query-name", "query-version", "query-qmp-schema"]
        const outcomes = tally()
        for (let i = 0; i < total; i++) {
          // query-qmp-schema is a ~200 KiB reply: an interrupt lands in the middle of reading it.
          const command = commands[rng.int(commands.length)]
          const exit = yield* interruptAfter(vm.execute(command as "query-status"), rng.int(4))
          outcomes.add(exitKind(exit))
          const name = yield* vm.execute("query-name", undefined, { timeout: "5 seconds" })
          assert.deepStrictEqual(name, {}, `iteration ${i} after ${command}`)
        }
        assert.isTrue(yield* vm.qmp.isOpen)
        console.log(`qmp call: ${total} iterations: ${outcomes}`)
      })),
    60_000
  )

  it.live("of a shutdown still ends the machine and releases everything", () =>
    Effect.scoped(Effect.gen(function*() {
      const rng = random("shutdown")
      const dir = yield* baseDir
      const total = iterations(60)
      const outcomes = tally()
      yield* Effect.scoped(Machine.make({ args: noneArgs, baseTempDir: dir }))
      const fds = openFds()
      for (let i = 0; i < total; i++) {
        let pid = 0
        const exit = yield* Effect.scoped(Effect.gen(function*() {
          const vm = yield* Machine.make({ args: noneArgs, baseTempDir: dir, name: `down-${i}` })
          pid = vm.pid
          const hard = i % 4 === 3
          const exit = yield* interruptAfter(hard ? vm.kill : vm.shutdown({ timeout: "5 seconds" }), rng.int(25))
          // A shutdown that had started completes despite the interrupt: the machine is down now.
          if (Exit.isSuccess(exit)) assert.isFalse(yield* vm.isRunning, `iteration ${i}`)
          return exit
        }))
        outcomes.add(exitKind(exit))
        assert.notStrictEqual(pid, 0)
        yield* expectNoChildren(0)
        yield* expectEmptyDir(dir)
      }
      yield* expectNoFdLeak(fds)
      console.log(`shutdown: ${total} iterations: ${outcomes}`)
      assert.strictEqual(outcomes.get("failed"), 0, String(outcomes))
    })), 60_000)

  it.live(
    "of a console wait leaves the console usable, and of a console launch leaves nothing",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const rng = random("console")
        const dir = yield* baseDir
        const image = yield* writeGuest(dir, bannerEchoGuest("READY"))
        const machines = yield* baseDir
        const waits = iterations(60)
        const launches = iterations(30)
        const outcomes = tally()
        yield* Effect.scoped(Effect.gen(function*() {
          const vm = yield* Machine.make({
            args: floppyBootArgs(image),
            baseTempDir: machines,
            name: "echo",
            console: {}
          })
          yield* vm.console.waitFor("READY", { timeout: "20 seconds" })
          for (let i = 0; i < waits; i++) {
            const exit = yield* interruptAfter(
              Effect.zipRight(vm.console.write(`t${i}.`), vm.console.waitFor(`never-${i}`, { since: "now" })),
              rng.int(10)
            )
            outcomes.add(exitKind(exit))
            // The console still carries text both ways, and a wait still sees what follows.
            yield* vm.console.write(`<${i}>`)
            yield* vm.console.waitFor(`<${i}>`, { timeout: "5 seconds" })
          }
        }))
        const fds = openFds()
        for (let i = 0; i < launches; i++) {
          let phase = "launching"
          yield* interruptAfter(
            Effect.scoped(Effect.gen(function*() {
              const vm = yield* Machine.make({
                args: floppyBootArgs(image),
                baseTempDir: machines,
                name: `echo-${i}`,
                console: { drain: i % 2 === 0 }
              })
              phase = "booting"
              yield* vm.console.waitFor("READY", { timeout: "20 seconds" })
              phase = "ready"
              return yield* Effect.never
            })),
            rng.int(250)
          )
          outcomes.add(phase)
          yield* expectNoChildren(0)
          yield* expectEmptyDir(machines)
        }
        yield* expectNoFdLeak(fds)
        console.log(`console: ${waits} waits, ${launches} launches: ${outcomes}`)
        assert.strictEqual(outcomes.get("failed"), 0, String(outcomes))
      })),
    120_000
  )
})
