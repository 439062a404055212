import { describe, expect, it, layer } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as Console from "../src/Console.js"
import * as Machine from "../src/Machine.js"
import type { QmpClient } from "../src/Qmp.js"
import * as Shell from "../src/Shell.js"
import * as Wait from "../src/Wait.js"
import { networked } from "./kit/netGuest.js"
import { tempDir } from "./kit/qemu.js"
import { shellGuest, shellGuestArgs } from "./kit/shellGuest.js"

const scratch = tempDir("effect-qemu-wait-")

/** Boots the Linux guest (no login). */
const booted = (config: Omit<Machine.MachineConfigInput, "args"> = {}) =>
  Effect.flatMap(shellGuest, (guest) => Machine.make({ console: {}, ...config, args: shellGuestArgs(guest) }))

/** Boots the Linux guest and logs in. */
const loggedIn = Effect.gen(function*() {
  const vm = yield* booted()
  yield* Shell.login(vm.console, { user: "root", password: "secret", timeout: "60 seconds" })
  const shell = Shell.fromConsole(vm.console)
  yield* shell.sync({ timeout: "20 seconds" })
  return { vm, shell }
})

const unmetOf = (error: Wait.WaitError) => error.unmet.map((u) => [u.strategy, u.reason, u.timedOut])

const booting = Layer.unwrapEffect(
  Effect.map(shellGuest, (guest) => Machine.layer({ console: {}, args: shellGuestArgs(guest) }))
)

/** From wherever the main cursor is: these tests share one machine and look from its first output. */
const start = { since: "start" } as const

layer(booting, { excludeTestServices: true, timeout: "2 minutes" })("Wait strategies on the console", (it) => {
  it.effect("a console pattern is met without moving the console's main cursor", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.Machine
      const cursor = yield* Effect.flatMap(vm.console.reader(), (reader) => reader.position)
      yield* Wait.until(vm, Wait.forConsole(/login: $/m, start))
      expect(yield* Effect.flatMap(vm.console.reader(), (reader) => reader.position)).toBe(cursor)
    }))

  it.effect("not met: WaitError names each part not met, its deadline, and the recent console output", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.Machine
      const strategy = Wait.all([
        Wait.forConsole("shellguest login:", start),
        Wait.forConsole("never-a").pipe(Wait.withTimeout("1 second")),
        Wait.forConsole("never-b").pipe(Wait.withTimeout("1 minute"))
      ])
      const error = yield* Effect.flip(Wait.until(vm, strategy, { timeout: "3 seconds" }))
      expect(error).toBeInstanceOf(Wait.WaitError)
      // one deadline: a part bounded sooner gives up sooner; one bounded later still ends with the whole
      expect(unmetOf(error)).toEqual([
        ["console \"never-a\"", "not met within 1s", true],
        ["console \"never-b\"", "not met within 3s", true]
      ])
      expect(error.message).toContain(`machine "${vm.name}" did not get ready`)
      expect(error.message).toContain("console \"never-b\": not met within 3s")
      expect(error.message).toMatch(/recent console output:\n(.*\n)*  \| shellguest login: /)
    }))

  it.effect("a failOn pattern fails the wait at once, for good", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.Machine
      const started = Date.now()
      const error = yield* Effect.flip(
        Wait.until(vm, Wait.forConsole("never", { ...start, failOn: ["login:"] }), { timeout: "1 minute" })
      )
      expect(unmetOf(error)).toEqual([["console \"never\"", "the console matched \"login:\" (\"login:\")", false]])
      expect(Date.now() - started).toBeLessThan(30_000)
    }))

  it.effect("any is met by its first part met; all is met once every part is", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.Machine
      const login = Wait.forConsole("login:", start)
      yield* Wait.until(vm, Wait.any([Wait.forConsole("never"), login]), { timeout: "1 minute" })
      yield* Wait.until(vm, Wait.all([Wait.forConsole("shell guest up", start), login]))
      const none = yield* Effect.flip(
        Wait.until(vm, Wait.any([Wait.forConsole("never-a"), Wait.forConsole("never-b")]), { timeout: "2 seconds" })
      )
      expect(unmetOf(none)).toEqual([
        ["console \"never-a\"", "not met within 2s", true],
        ["console \"never-b\"", "not met within 2s", true]
      ])
      expect(none.strategy).toBe("any of (console \"never-a\", console \"never-b\")")
      const empty = yield* Effect.flip(Wait.until(vm, Wait.any([])))
      expect(empty.unmet[0].reason).toContain("give at least one")
    }))
})

describe("Wait strategies on a Linux guest", () => {
  it.scopedLive("a QMP event with a typed match: a guest power-off is met, a mismatch is not", () =>
    Effect.gen(function*() {
      const { vm } = yield* loggedIn
      const [mismatch] = yield* Effect.all([
        Effect.flip(Wait.until(vm, Wait.forEvent("SHUTDOWN", { match: { data: { guest: false } } }))),
        Wait.until(vm, Wait.forEvent("SHUTDOWN", { match: { data: { guest: true, reason: "guest-shutdown" } } })),
        Effect.zipRight(Effect.sleep("200 millis"), vm.console.write("poweroff -f\r"))
      ], { concurrency: "unbounded" })
      // QEMU exits after the event: the wait that did not match it fails for good, at once
      expect(mismatch.unmet).toMatchObject([{ strategy: "event SHUTDOWN", timedOut: false }])
      expect(mismatch.unmet[0].reason).toContain("closed")
    }))

  it.scopedLive("a command in the guest: met once it exits with 0, not met with its last exit code", () =>
    Effect.gen(function*() {
      const { shell, vm } = yield* loggedIn
      yield* shell.run("rm -f /root/flag; (sleep 2; touch /root/flag) > /dev/null 2>&1 &")
      const cursor = yield* Effect.flatMap(vm.console.reader(), (reader) => reader.position)
      const started = Date.now()
      yield* Wait.until(vm, Wait.forCommand("test -e /root/flag", { interval: "200 millis" }), {
        timeout: "30 seconds"
      })
      expect(Date.now() - started).toBeGreaterThanOrEqual(1500)
      expect(yield* Effect.flatMap(vm.console.reader(), (reader) => reader.position)).toBe(cursor)
      const error = yield* Effect.flip(
        Wait.until(vm, Wait.forCommand("echo not yet; false"), { timeout: "3 seconds" })
      )
      expect(unmetOf(error)).toEqual([[
        "command \"echo not yet; false\"",
        "not met within 3s; last: exit code 1: not yet",
        true
      ]])
      // the shell is still usable afterwards
      expect(yield* shell.run("echo after")).toEqual({ exitCode: 0, stdout: "after\n" })
    }))

  it.scopedLive("a forwarded port: refused while nothing listens, met once a guest nc -l does", () =>
    Effect.gen(function*() {
      const { shell, vm } = yield* networked([8080])
      const refused = yield* Effect.flip(Wait.until(vm, Wait.forPort(8080), { timeout: "3 seconds" }))
      expect(refused.unmet[0].strategy).toBe("port 8080")
      expect(refused.unmet[0].reason).toContain("the guest refused a connection to port 8080 (nothing listening)")
      const unknown = yield* Effect.flip(Wait.until(vm, Wait.forPort(9999)))
      expect(unknown.unmet[0]).toMatchObject({
        reason: expect.stringContaining("not forwarded (forwarded: 8080)"),
        timedOut: false
      })
      // stdin kept open: nc holds the connection it accepts until the other side closes it
      yield* shell.run("(sleep 2; sleep 1000 | nc -l -p 8080) > /dev/null 2>&1 &")
      const started = Date.now()
      yield* Wait.until(vm, Wait.forPort(8080), { timeout: "30 seconds" })
      expect(Date.now() - started).toBeGreaterThanOrEqual(1500)
    }))

  it.scopedLive("a machine whose config says waitFor is handed over only once it is met", () =>
    Effect.gen(function*() {
      const vm = yield* booted({ waitFor: Wait.forConsole("login:") })
      expect(yield* vm.console.recent).toContain("shellguest login:")
    }))

  it.scopedLive("a machine whose waitFor is not met fails with WaitError and is stopped at once", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const error = yield* Effect.flip(booted({
        baseTempDir: dir,
        // the part bounded sooner gives up first; the whole waits for the other part, then fails
        waitFor: Wait.all([Wait.forConsole("login:"), Wait.forConsole("never").pipe(Wait.withTimeout("1 second"))])
      }))
      expect(error._tag).toBe("WaitError")
      const wait = error as Wait.WaitError
      expect(Duration.toMillis(wait.timeout)).toBe(60_000)
      expect(unmetOf(wait)).toEqual([["console \"never\"", "not met within 1s", true]])
      expect(wait.recent).toContain("login:")
      // released already (the temp directory goes last), not when this test's scope ends
      expect(Fs.readdirSync(dir)).toEqual([])
    }))
})

describe("Wait inputs", () => {
  // enough of a machine for checks that fail before asking QEMU anything
  const target: Wait.WaitTarget = {
    name: "vm-input",
    console: Console.unavailable("no console"),
    qmp: {} as QmpClient,
    ports: new Map([[22, 40022]])
  }

  it.live("a bad interval or timeout fails the wait at once, saying what to give instead", () =>
    Effect.gen(function*() {
      const interval = yield* Effect.flip(Wait.until(target, Wait.forPort(22, { interval: -1 })))
      expect(unmetOf(interval)).toEqual([["port 22", "interval: expected a positive duration, got -1", false]])
      const inner = yield* Effect.flip(
        Wait.until(target, Wait.all([Wait.forPort(22).pipe(Wait.withTimeout("soon" as Duration.DurationInput))]))
      )
      expect(inner.unmet[0].reason).toContain("timeout: expected a duration such as \"30 seconds\"")
      const outer = yield* Effect.flip(Wait.until(target, Wait.forPort(22), { timeout: 0 }))
      expect(outer.unmet[0].reason).toBe("timeout: expected a positive duration, got 0")
      expect(outer.message).toContain("(no console output)")
    }))
})
