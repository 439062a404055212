import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Machine from "../src/Machine.js"
import { bannerEchoGuest, floppyBootArgs, poweroffGuest, writeGuest } from "./kit/guests.js"
import { isRunning, noneArgs, tempDir } from "./kit/qemu.js"

const scratch = tempDir("effect-qemu-dev-")

/** Boots a guest sector from a floppy with the console on a socketpair. */
const bootGuest = (
  bytes: Uint8Array,
  config: Omit<Machine.MachineConfigInput, "args"> = {},
  extraArgs: Array<string> = []
) =>
  Effect.gen(function*() {
    const dir = yield* scratch
    const image = yield* writeGuest(dir, bytes)
    const vm = yield* Machine.make({
      console: {},
      ...config,
      args: [...floppyBootArgs(image), ...extraArgs]
    })
    return { vm, dir }
  })

describe("Machine console", () => {
  it.scopedLive("reads the guest's banner with waitFor and echoes what is written", () =>
    Effect.gen(function*() {
      const { vm } = yield* bootGuest(bannerEchoGuest("effect-qemu guest ready"))
      const banner = yield* vm.console.waitFor("effect-qemu guest ready", { timeout: "10 seconds" })
      assert.strictEqual(banner, "effect-qemu guest ready")
      yield* vm.console.write("ping-123")
      // The echo comes back a byte at a time: ask for all three digits.
      const echoed = yield* vm.console.waitFor(/ping-\d{3}/, { timeout: "10 seconds" })
      assert.strictEqual(echoed[0], "ping-123")
    }))

  it.scopedLive("drains the console into a log file", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const logFile = Path.join(dir, "console.log")
      const { vm } = yield* bootGuest(bannerEchoGuest("drained banner"), { console: { logFile } })
      yield* vm.console.waitFor("drained banner", { timeout: "10 seconds" })
      yield* vm.shutdown()
      assert.include(Fs.readFileSync(logFile, "utf8"), "drained banner")
      assert.strictEqual(Fs.statSync(logFile).mode & 0o777, 0o600)
    }))

  it.scopedLive("attaches the console to a device type and to a later index", () =>
    Effect.gen(function*() {
      const { vm } = yield* bootGuest(bannerEchoGuest("on isa-serial"), { console: { deviceType: "isa-serial" } })
      assert.isTrue(vm.commandLine.includes("isa-serial,chardev=console"))
      yield* vm.console.waitFor("on isa-serial", { timeout: "10 seconds" })
      // At index 1 the guest's COM1 is the null port: nothing reaches the console.
      const second = yield* bootGuest(bannerEchoGuest("to the null port"), { console: { index: 1, drain: true } })
      const serials = second.vm.commandLine.filter((_, i) => second.vm.commandLine[i - 1] === "-serial")
      assert.deepStrictEqual(serials, ["null", "chardev:console"])
      const error = yield* Effect.flip(second.vm.console.waitFor("to the null port", { timeout: "1500 millis" }))
      assert.strictEqual(error._tag, "ConsoleTimeout")
    }))

  it.scopedLive("wait returns when the guest powers itself off", () =>
    Effect.gen(function*() {
      const { vm } = yield* bootGuest(poweroffGuest("powering off"))
      yield* vm.wait({ timeout: "20 seconds" })
      assert.deepStrictEqual(Option.getOrThrow(yield* vm.exitStatus), { code: 0, signal: null })
      const events = yield* vm.takeEvents
      const shutdown = events.find((event) => event.event === "SHUTDOWN")
      assert.deepStrictEqual(shutdown?.data, { guest: true, reason: "guest-shutdown" })
      assert.isFalse(isRunning(vm.pid))
    }))

  it.scopedLive("a machine without a console fails console calls with ConsoleClosed", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      const error = yield* Effect.flip(vm.console.waitFor("x", { timeout: "1 second" }))
      assert.strictEqual(error._tag, "ConsoleClosed")
      assert.include(error.message, "no console")
    }))
})

describe("Machine file descriptors", () => {
  it.scopedLive("passes descriptors at launch with -add-fd, seen by query-fdsets", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const file = Path.join(dir, "disk.raw")
      Fs.writeFileSync(file, Buffer.alloc(4096))
      const fd = Fs.openSync(file, "r+")
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.closeSync(fd)))
      const vm = yield* Machine.make({
        args: noneArgs,
        fds: [{ fd, set: 7, opaque: "scratch-disk" }]
      })
      const fdsets = yield* vm.execute("query-fdsets")
      const set = fdsets.find((entry) => entry["fdset-id"] === 7)
      assert.isDefined(set)
      assert.strictEqual(set!.fds.length, 1)
      assert.strictEqual(set!.fds[0].opaque, "scratch-disk")
      // QEMU's descriptor refers to our file.
      assert.strictEqual(Fs.readlinkSync(`/proc/${vm.pid}/fd/${set!.fds[0].fd}`), file)
    }))

  it.scopedLive("passes a descriptor to the running VM (getfd), which closefd then releases", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const fd = Fs.openSync(Path.join(dir, "passed"), "w")
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.closeSync(fd)))
      const vm = yield* Machine.make({ args: noneArgs })
      yield* vm.sendFd(fd, "passed-fd")
      yield* vm.execute("closefd", { fdname: "passed-fd" })
      const error = yield* Effect.flip(vm.execute("closefd", { fdname: "passed-fd" }))
      assert.strictEqual(error._tag === "QmpCommandError" && error.errorClass, "GenericError")
      // The connection is still in step after the descriptor went by.
      assert.strictEqual((yield* vm.execute("query-status")).status, "running")
    }))

  it.scopedLive("requests made while a descriptor is passed wait, and every one gets its reply", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const vm = yield* Machine.make({ args: noneArgs })
      const fds = Array.from({ length: 5 }, (_, i) => Fs.openSync(Path.join(dir, `f${i}`), "w"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fds.forEach((fd) => Fs.closeSync(fd))))
      const results = yield* Effect.all([
        Effect.forEach(fds, (fd, i) => vm.sendFd(fd, `fd-${i}`), { concurrency: "unbounded" }),
        Effect.forEach(Array.from({ length: 50 }), () => vm.execute("query-status"), { concurrency: "unbounded" })
      ], { concurrency: "unbounded" })
      assert.strictEqual(results[1].length, 50)
      for (let i = 0; i < fds.length; i++) yield* vm.execute("closefd", { fdname: `fd-${i}` })
    }))

  it.scopedLive("add-fd over QMP with a passed descriptor lands in a new fd set", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const fd = Fs.openSync(Path.join(dir, "added"), "w")
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.closeSync(fd)))
      const vm = yield* Machine.make({ args: noneArgs })
      const info = (yield* vm.qmp.executeWithFd(fd, "add-fd", { opaque: "runtime" })) as { "fdset-id": number }
      const fdsets = yield* vm.execute("query-fdsets")
      const set = fdsets.find((entry) => entry["fdset-id"] === info["fdset-id"])
      assert.strictEqual(set?.fds[0].opaque, "runtime")
    }))
})
