import { assert, describe, it, layer } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Console from "../src/Console.js"
import * as GuestAgent from "../src/GuestAgent.js"
import * as Machine from "../src/Machine.js"
import type { MachineConfigError } from "../src/MachineError.js"
import type { QmpClient } from "../src/Qmp.js"
import * as Wait from "../src/Wait.js"
import { childQemus, failsLeavingNothing } from "./kit/leftovers.js"
import { linuxGuest, linuxGuestArgs } from "./kit/linuxGuest.js"
import { bootLinux, loggedIn } from "./kit/linuxMachine.js"
import { noneArgs, tempDir } from "./kit/qemu.js"

const unmetOf = (error: Wait.WaitError) => error.unmet.map((u) => [u.strategy, u.reason, u.timedOut])

const elapsed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const started = Date.now()
    const result = yield* effect
    return [result, Date.now() - started] as const
  })

const cursorOf = (vm: Machine.MachineService) => Effect.flatMap(vm.console.reader(), (reader) => reader.position)

const booting = Layer.unwrapEffect(
  Effect.map(linuxGuest, (guest) => Machine.layer({ console: {}, args: linuxGuestArgs(guest) }))
)

/** From the console's first output: these tests share one machine, whatever its main cursor saw. */
const start = { since: "start" } as const

layer(booting, { excludeTestServices: true, timeout: "2 minutes" })("Wait strategies on the console", (it) => {
  it.effect("a console pattern is met without moving the console's main cursor", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.Machine
      const cursor = yield* cursorOf(vm)
      yield* Wait.until(vm, Wait.forConsole(/login: $/m, start))
      assert.strictEqual(yield* cursorOf(vm), cursor)
    }))

  it.effect("not met: WaitError names each part not met, its deadline, and the recent console output", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.Machine
      const strategy = Wait.all([
        Wait.forConsole("linuxguest login:", start),
        Wait.forConsole("never-a").pipe(Wait.withTimeout("1 second")),
        Wait.forConsole("never-b").pipe(Wait.withTimeout("1 minute"))
      ])
      const error = yield* Effect.flip(Wait.until(vm, strategy, { timeout: "3 seconds" }))
      assert.instanceOf(error, Wait.WaitError)
      // one deadline: a part bounded sooner gives up sooner; one bounded later still ends with the whole
      assert.deepStrictEqual(unmetOf(error), [
        ["console \"never-a\"", "not met within 1s", true],
        ["console \"never-b\"", "not met within 3s", true]
      ])
      assert.include(error.message, `machine "${vm.name}" did not get ready`)
      assert.include(error.message, "console \"never-b\": not met within 3s")
      assert.match(error.message, /recent console output:\n(.*\n)* {2}\| linuxguest login: /)
    }))

  it.effect("a failOn pattern fails the wait at once, for good", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.Machine
      const [error, millis] = yield* elapsed(Effect.flip(
        Wait.until(vm, Wait.forConsole("never", { ...start, failOn: ["login:"] }), { timeout: "1 minute" })
      ))
      assert.deepStrictEqual(unmetOf(error), [[
        "console \"never\"",
        "the console matched \"login:\" (\"login:\")",
        false
      ]])
      assert.isBelow(millis, 30_000)
    }))

  it.effect("any is met by its first part met; all is met once every part is", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.Machine
      const login = Wait.forConsole("login:", start)
      yield* Wait.until(vm, Wait.any([Wait.forConsole("never"), login]), { timeout: "1 minute" })
      yield* Wait.until(vm, Wait.all([Wait.forConsole("linux guest up", start), login]))
      const none = yield* Effect.flip(
        Wait.until(vm, Wait.any([Wait.forConsole("never-a"), Wait.forConsole("never-b")]), { timeout: "2 seconds" })
      )
      assert.deepStrictEqual(unmetOf(none), [
        ["console \"never-a\"", "not met within 2s", true],
        ["console \"never-b\"", "not met within 2s", true]
      ])
      assert.strictEqual(none.strategy, "any of (console \"never-a\", console \"never-b\")")
    }))
})

describe("Wait strategies on a Linux guest", () => {
  it.scopedLive("a QMP event with a typed match: a guest power-off is met, a mismatch is not", () =>
    Effect.gen(function*() {
      const { vm } = yield* loggedIn()
      const [mismatch] = yield* Effect.all([
        Effect.flip(Wait.until(vm, Wait.forEvent("SHUTDOWN", { match: { data: { guest: false } } }))),
        Wait.until(vm, Wait.forEvent("SHUTDOWN", { match: { data: { guest: true, reason: "guest-shutdown" } } })),
        Effect.zipRight(Effect.sleep("200 millis"), vm.console.write("poweroff -f\r"))
      ], { concurrency: "unbounded" })
      // QEMU exits after the event: the wait that did not match it fails for good, at once
      assert.strictEqual(mismatch.unmet.length, 1)
      assert.strictEqual(mismatch.unmet[0].strategy, "event SHUTDOWN")
      assert.isFalse(mismatch.unmet[0].timedOut)
      assert.include(mismatch.unmet[0].reason, "closed")
    }))

  it.scopedLive("a command in the guest: met once it exits with 0, not met with its last exit code", () =>
    Effect.gen(function*() {
      const { shell, vm } = yield* loggedIn()
      yield* shell.run("rm -f /root/flag; (sleep 2; touch /root/flag) > /dev/null 2>&1 &")
      const cursor = yield* cursorOf(vm)
      const [, millis] = yield* elapsed(
        Wait.until(vm, Wait.forCommand("test -e /root/flag", { interval: "200 millis" }), { timeout: "30 seconds" })
      )
      assert.isAtLeast(millis, 1500)
      assert.strictEqual(yield* cursorOf(vm), cursor)
      const error = yield* Effect.flip(Wait.until(vm, Wait.forCommand("echo not yet; false"), { timeout: "3 seconds" }))
      assert.deepStrictEqual(unmetOf(error), [[
        "command \"echo not yet; false\"",
        "not met within 3s; last: exit code 1: not yet",
        true
      ]])
      // the shell is still usable afterwards
      assert.deepStrictEqual(yield* shell.run("echo after"), { exitCode: 0, stdout: "after\n" })
    }))

  it.scopedLive("a forwarded port: refused while nothing listens, met once a guest nc -l does", () =>
    Effect.gen(function*() {
      const { shell, vm } = yield* loggedIn({ ports: [8080] })
      const refused = yield* Effect.flip(Wait.until(vm, Wait.forPort(8080), { timeout: "3 seconds" }))
      assert.strictEqual(refused.unmet[0].strategy, "port 8080")
      assert.include(refused.unmet[0].reason, "the guest refused a connection to port 8080 (nothing listening)")
      const unknown = yield* Effect.flip(Wait.until(vm, Wait.forPort(9999)))
      assert.include(unknown.unmet[0].reason, "not forwarded (forwarded: 8080)")
      assert.isFalse(unknown.unmet[0].timedOut)
      // stdin kept open: nc holds the connection it accepts until the other side closes it
      yield* shell.run("(sleep 2; sleep 1000 | nc -l -p 8080) > /dev/null 2>&1 &")
      const [, millis] = yield* elapsed(Wait.until(vm, Wait.forPort(8080), { timeout: "30 seconds" }))
      assert.isAtLeast(millis, 1500)
    }))

  it.scopedLive("the guest agent: not answering while the guest boots, met once qemu-ga runs", () =>
    Effect.gen(function*() {
      const vm = yield* bootLinux({ guestAgent: true })
      const early = yield* Effect.flip(Wait.until(vm, Wait.forAgent(), { timeout: "200 millis" }))
      assert.deepStrictEqual(unmetOf(early), [[
        "guest agent",
        "not met within 200ms; last: qemu-ga has not answered guest-sync-delimited yet",
        true
      ]])
      yield* Wait.until(vm, Wait.forAgent(), { timeout: "2 minutes" })
      assert.include(yield* vm.guestAgent.hostName({ timeout: "5 seconds" }), "linuxguest")
    }))

  it.scopedLive("the guest agent of a machine without one fails the wait at once, saying so", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      const [error, millis] = yield* elapsed(Effect.flip(Wait.until(vm, Wait.forAgent(), { timeout: "1 minute" })))
      assert.strictEqual(error.unmet[0].strategy, "guest agent")
      assert.include(error.unmet[0].reason, "launched without guestAgent: true")
      assert.isFalse(error.unmet[0].timedOut)
      assert.isBelow(millis, 10_000)
    }))
})

describe("A machine's waitFor", () => {
  it.scopedLive("waitFor all of the guest agent, the login prompt and a port hands the machine over with each met", () =>
    Effect.gen(function*() {
      const vm = yield* bootLinux({
        guestAgent: true,
        ports: [8080],
        waitFor: Wait.all([Wait.forAgent(), Wait.forConsole("linuxguest login:", start)])
      })
      // no waiting of the caller's: the agent already answers and the prompt is already there
      yield* vm.guestAgent.ping({ timeout: "5 seconds" })
      assert.include(yield* vm.console.recent, "linuxguest login:")
      assert.isTrue(vm.ports.has(8080))
      // what the failed launches below are checked against: a running machine is seen
      assert.include(childQemus(), vm.pid)
    }))

  it.scopedLive("waitFor any: the guest agent met, the part never met is stopped", () =>
    Effect.gen(function*() {
      const vm = yield* bootLinux({
        guestAgent: true,
        waitFor: Wait.any([Wait.forConsole("never printed"), Wait.forAgent()]).pipe(Wait.withTimeout("2 minutes"))
      })
      yield* vm.guestAgent.ping({ timeout: "5 seconds" })
    }))

  it.scopedLive("waitFor not met: make fails with WaitError, and the machine is already stopped, nothing left", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("effect-qemu-wait-")
      const error = yield* failsLeavingNothing(
        dir,
        bootLinux({
          baseTempDir: dir,
          // the part bounded sooner gives up first; the whole waits for the other part, then fails
          waitFor: Wait.all([Wait.forConsole("login:"), Wait.forConsole("never").pipe(Wait.withTimeout("1 second"))])
        })
      )
      assert.strictEqual(error._tag, "WaitError")
      const wait = error as Wait.WaitError
      assert.strictEqual(Duration.toMillis(wait.timeout), 60_000)
      assert.deepStrictEqual(unmetOf(wait), [["console \"never\"", "not met within 1s", true]])
      assert.include(wait.recent, "login:")
      assert.include(wait.message, "recent console output:")
    }))

  it.scopedLive("waitFor on the guest agent of a guest that never starts one: stopped at the deadline, nothing left", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("effect-qemu-wait-")
      // SeaBIOS finds nothing to boot: the agent's port is there, nobody opens it
      const error = yield* failsLeavingNothing(
        dir,
        Machine.make({
          baseTempDir: dir,
          guestAgent: true,
          args: ["-M", "pc", "-m", "64", "-nic", "none"],
          waitFor: Wait.forAgent().pipe(Wait.withTimeout("2 seconds"))
        })
      )
      assert.strictEqual(error._tag, "WaitError")
      assert.deepStrictEqual(unmetOf(error as Wait.WaitError), [[
        "guest agent",
        "not met within 2s; last: qemu-ga has not answered guest-sync-delimited yet",
        true
      ]])
      assert.include(error.message, "(no console output)")
    }))
})

describe("Wait: bad input", () => {
  // enough of a machine for checks that fail before asking QEMU anything
  const target: Wait.WaitTarget = {
    name: "vm-input",
    console: Console.unavailable("no console"),
    qmp: {} as QmpClient,
    guestAgent: GuestAgent.unavailable("vm-input", "no agent"),
    ports: new Map([[22, 40022]])
  }

  it.live("a bad port, interval or timeout fails the wait at once, saying what to give instead", () =>
    Effect.gen(function*() {
      const interval = yield* Effect.flip(Wait.until(target, Wait.forPort(22, { interval: -1 })))
      assert.deepStrictEqual(unmetOf(interval), [["port 22", "interval: expected a positive duration, got -1", false]])
      for (const port of [0, 65536, 1.5, Number.NaN]) {
        const error = yield* Effect.flip(Wait.until(target, Wait.any([Wait.forConsole("x"), Wait.forPort(port)])))
        assert.deepStrictEqual(unmetOf(error), [[
          `port ${port}`,
          "expected a guest TCP port, an integer from 1 to 65535",
          false
        ]])
      }
      const inner = yield* Effect.flip(
        Wait.until(target, Wait.all([Wait.forPort(22).pipe(Wait.withTimeout("soon" as Duration.DurationInput))]))
      )
      assert.include(inner.unmet[0].reason, "timeout: expected a duration such as \"30 seconds\"")
      const outer = yield* Effect.flip(Wait.until(target, Wait.forPort(22), { timeout: 0 }))
      assert.strictEqual(outer.unmet[0].reason, "timeout: expected a positive duration, got 0")
      assert.include(outer.message, "(no console output)")
      const empty = yield* Effect.flip(Wait.until(target, Wait.any([])))
      assert.include(empty.unmet[0].reason, "give at least one")
      const pattern = yield* Effect.flip(Wait.until(target, Wait.forConsole("")))
      assert.include(pattern.unmet[0].reason, "expected a non-empty string or a RegExp")
      const command = yield* Effect.flip(
        Wait.until(target, Wait.forCommand("true", { interval: "often" as Duration.DurationInput }))
      )
      assert.include(command.unmet[0].reason, "interval: expected a duration")
    }))

  it.scopedLive("a machine's bad waitFor is refused before anything is spawned, naming the part", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("effect-qemu-wait-")
      const make = (waitFor: unknown) =>
        failsLeavingNothing(
          dir,
          Machine.make({ args: noneArgs, baseTempDir: dir, waitFor: waitFor as Wait.Strategy })
        ).pipe(Effect.map((error) => error as MachineConfigError))
      const port = yield* make(Wait.all([Wait.forConsole("login:"), Wait.forPort(70000)]))
      assert.strictEqual(port._tag, "MachineConfigError")
      assert.strictEqual(port.field, "waitFor")
      assert.include(port.message, "port 70000: expected a guest TCP port")
      const timeout = yield* make(Wait.forAgent().pipe(Wait.withTimeout(-5)))
      assert.include(timeout.message, "guest agent: timeout: expected a positive duration, got -5")
      const notStrategy = yield* make("login:")
      assert.strictEqual(notStrategy.field, "waitFor")
      assert.include(notStrategy.message, "expected a wait strategy")
    }))
})
