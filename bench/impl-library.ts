/**
 * The library: each scenario written the way a user of effect-qemu would write it, with
 * `Machine.make` (scoped), `execute`, `shutdown` and `Console.make`.
 *
 * QEMU gets the baseline's flags: `Machine` adds `-display none -vga none` and the QMP
 * socketpair at fd 3 itself, and we add `-M none -nodefaults`.
 *
 * `parentDeathSignal` is on by default in the library (QEMU is exec'd through
 * `setpriv --pdeathsig KILL --`), so it is on here: that exec is a real cost of the library's
 * default. Set `BENCH_PARENT_DEATH=off` to measure without it.
 */
import * as Effect from "effect/Effect"
import * as Console from "../src/Console.js"
import * as Machine from "../src/Machine.js"
import type { Implementation } from "./impl.js"

const config: Machine.MachineConfigInput = {
  binary: process.env.QEMU_BINARY ?? "qemu-system-x86_64",
  args: ["-M", "none", "-nodefaults"],
  parentDeathSignal: process.env.BENCH_PARENT_DEATH !== "off"
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

/** Runs `effect` and resolves with `ms`, the wall time of `effect` alone. */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    const value = yield* effect
    return { value, ms: performance.now() - start }
  })

const library: Implementation = {
  name: "library",

  launch: () => Effect.runPromise(Effect.scoped(Effect.map(timed(Machine.make(config)), ({ ms }) => ({ ms })))),

  shutdown: () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const vm = yield* Machine.make(config)
      const { ms } = yield* timed(vm.shutdown())
      return { ms }
    }))),

  qmpRoundTrips: ({ requests, workers }) =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const vm = yield* Machine.make(config)
      const { ms } = yield* timed(Effect.forEach(range(workers), (w) => {
        const share = Math.floor(requests / workers) + (w < requests % workers ? 1 : 0)
        return Effect.gen(function*() {
          for (let i = 0; i < share; i++) yield* vm.execute("query-status")
        })
      }, { concurrency: "unbounded", discard: true }))
      return { ms }
    }))),

  fleet: ({ machines }) =>
    Effect.runPromise(Effect.map(
      timed(Effect.forEach(range(machines), () =>
        Effect.scoped(Effect.gen(function*() {
          const vm = yield* Machine.make(config)
          yield* vm.execute("query-status")
          yield* vm.shutdown()
        })), { concurrency: "unbounded", discard: true })),
      ({ ms }) => ({ ms })
    )),

  consoleDrain: ({ socketPath }) =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const { ms, value: bytes } = yield* timed(Effect.gen(function*() {
        const console = yield* Console.make({ path: socketPath, drain: true })
        yield* console.ended
        return yield* console.bytesRead
      }))
      return { ms, bytes }
    }))),

  idleMachines: ({ machines, whileIdle }) =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const { ms, value: vms } = yield* timed(
        Effect.forEach(range(machines), () => Machine.make(config), { concurrency: "unbounded" })
      )
      yield* Effect.promise(whileIdle)
      yield* Effect.forEach(vms, (vm) => vm.shutdown(), { concurrency: "unbounded", discard: true })
      return { ms }
    })))
}

export default library
