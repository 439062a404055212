import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Machine from "../src/Machine.js"
import * as Metrics from "../src/Metrics.js"
import { untyped } from "../src/QmpCommands.js"
import { bannerEchoGuest, floppyBootArgs, writeGuest } from "./kit/guests.js"
import { noneArgs, temporaryDirectory } from "./kit/qemu.js"

const commands = (command: string, outcome: string) =>
  Effect.map(
    Metric.value(Metrics.qmpCommands.pipe(Metric.tagged("command", command), Metric.tagged("outcome", outcome))),
    (state) => state.count
  )

const latencies = (command: string) =>
  Effect.map(Metric.value(Metrics.qmpCommandDuration.pipe(Metric.tagged("command", command))), (state) => state)

const launches = (outcome: string) =>
  Effect.map(Metric.value(Metrics.machineLaunches.pipe(Metric.tagged("outcome", outcome))), (state) => state.count)

const running = Effect.map(Metric.value(Metrics.machinesRunning), (state) => state.value)

describe("Metrics against real QEMU", () => {
  it.scopedLive("count QMP commands by command and outcome, with the latency of each reply", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs, qmpOptions: { checkCommands: false } })
      const okBefore = yield* commands("query-name", "ok")
      const errorBefore = yield* commands("no-such-command", "error")
      const latencyBefore = yield* latencies("query-name")
      for (let i = 0; i < 3; i++) yield* vm.execute("query-name")
      yield* Effect.flip(vm.execute(untyped("no-such-command")))
      assert.strictEqual((yield* commands("query-name", "ok")) - okBefore, 3)
      assert.strictEqual((yield* commands("no-such-command", "error")) - errorBefore, 1)
      const latency = yield* latencies("query-name")
      assert.strictEqual(latency.count - latencyBefore.count, 3)
      assert.isAbove(latency.sum, latencyBefore.sum)
      assert.isBelow(latency.max, 60)
    }))

  it.scopedLive("count timed-out commands and events dropped by the bounded buffers", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs, qmpOptions: { eventBufferSize: 1 } })
      const droppedBefore = (yield* Metric.value(Metrics.qmpEventsDropped)).count
      yield* vm.execute("stop")
      yield* vm.execute("cont")
      yield* vm.execute("stop")
      assert.isAtLeast((yield* Metric.value(Metrics.qmpEventsDropped)).count - droppedBefore, 2)
      const timeoutsBefore = yield* commands("human-monitor-command", "timeout")
      // A stopped QEMU cannot answer: the command times out; QEMU is let go on at once.
      process.kill(vm.pid, "SIGSTOP")
      yield* Effect.flip(vm.hmp("info status", { timeout: "200 millis" })).pipe(
        Effect.ensuring(Effect.sync(() => process.kill(vm.pid, "SIGCONT")))
      )
      assert.strictEqual((yield* commands("human-monitor-command", "timeout")) - timeoutsBefore, 1)
    }))

  it.scopedLive("count launches, successful and failed, and machines running until they end", () =>
    Effect.gen(function*() {
      const okBefore = yield* launches("ok")
      const failedBefore = yield* launches("failed")
      const runningBefore = yield* running
      const durationsBefore = (yield* Metric.value(Metrics.machineLaunchDuration)).count
      const vm = yield* Machine.make({ args: noneArgs })
      assert.strictEqual((yield* launches("ok")) - okBefore, 1)
      assert.strictEqual((yield* Metric.value(Metrics.machineLaunchDuration)).count - durationsBefore, 1)
      assert.strictEqual((yield* running) - runningBefore, 1)
      yield* Effect.flip(Effect.scoped(Machine.make({ args: ["-M", "no-such-machine"] })))
      assert.strictEqual((yield* launches("failed")) - failedBefore, 1)
      yield* vm.shutdown()
      assert.strictEqual((yield* running) - runningBefore, 0)
    }))

  it.scopedLive("count abnormal shutdowns by reason", () =>
    Effect.gen(function*() {
      const before = (yield* Metric.value(Metrics.abnormalShutdowns.pipe(Metric.tagged("reason", "Timeout")))).count
      const vm = yield* Machine.make({ args: noneArgs })
      // A stopped QEMU cannot answer `quit`: the stop times out and kills it.
      process.kill(vm.pid, "SIGSTOP")
      const error = yield* Effect.flip(vm.shutdown({ timeout: "300 millis" }))
      assert.strictEqual(error._tag, "AbnormalShutdown")
      const after = (yield* Metric.value(Metrics.abnormalShutdowns.pipe(Metric.tagged("reason", "Timeout")))).count
      assert.strictEqual(after - before, 1)
    }))

  it.scopedLive("count console bytes from the guest and to it", () =>
    Effect.gen(function*() {
      const bytes = (direction: string) =>
        Effect.map(
          Metric.value(Metrics.consoleBytes.pipe(Metric.tagged("direction", direction))),
          (state) => state.count
        )
      const inBefore = yield* bytes("in")
      const outBefore = yield* bytes("out")
      const image = yield* writeGuest(yield* temporaryDirectory, bannerEchoGuest("metrics-banner"))
      const vm = yield* Machine.make({ console: {}, args: floppyBootArgs(image) })
      yield* vm.console.waitFor("metrics-banner", { timeout: "20 seconds" })
      yield* vm.console.write("héllo")
      assert.isAtLeast((yield* bytes("in")) - inBefore, "metrics-banner".length)
      assert.strictEqual((yield* bytes("out")) - outBefore, Buffer.byteLength("héllo"))
    }))
})
