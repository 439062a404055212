import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Console from "../src/Console.js"
import { ConsoleClosed, ConsoleError, ConsoleFailureMatched, ConsoleTimeout } from "../src/ConsoleError.js"
import * as Machine from "../src/Machine.js"
import {
  bannerEchoGuest,
  echoUntilEnterGuest,
  floodGuest,
  floodThenPoweroffGuest,
  floppyBootArgs,
  poweroffGuest,
  writeGuest
} from "./kit/guests.js"
import { isRunning, type QemuChild, spawnQemu, temporaryDirectory } from "./kit/qemu.js"

interface Booted {
  readonly qemu: QemuChild
  readonly directory: string
}

/**
 * Boots `guest` under real QEMU for the duration of `body`, then checks that neither the QEMU process
 * nor the temporary directory outlived it.
 */
const withGuest = <A, E>(
  guest: Uint8Array,
  body: (booted: Booted) => Effect.Effect<A, E, Scope.Scope>,
  extraArgs: ReadonlyArray<string> = []
): Effect.Effect<A, E> =>
  Effect.gen(function*() {
    let pid = 0
    let directory = ""
    const result = yield* Effect.scoped(Effect.gen(function*() {
      directory = yield* temporaryDirectory
      const image = yield* writeGuest(directory, guest)
      const qemu = yield* spawnQemu([...floppyBootArgs(image), ...extraArgs])
      pid = qemu.pid
      return yield* body({ qemu, directory })
    }))
    assert.strictEqual(isRunning(pid), false)
    assert.strictEqual(Fs.existsSync(directory), false)
    return result
  })

const collectLines = (console: Console.ConsoleService, count: number) =>
  console.lines.pipe(Stream.take(count), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))

describe("Console", () => {
  it.live("waitFor returns the banner the guest prints", () =>
    withGuest(bannerEchoGuest("READY banner"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, name: "banner" })
        assert.strictEqual(yield* console.waitFor("READY banner", { timeout: "10 seconds" }), "READY banner")
        const match = yield* console.waitFor(/READY (\w+)/, { since: "start", timeout: "1 second" })
        assert.strictEqual(match[1], "banner")
      })))

  it.live("text written to the console reaches the guest, which echoes it back", () =>
    withGuest(bannerEchoGuest("echo ready"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console })
        yield* console.waitFor("echo ready", { timeout: "10 seconds" })
        yield* console.write("ping 4217")
        yield* console.write(new TextEncoder().encode(" and bytes"))
        assert.strictEqual(
          yield* console.waitFor("ping 4217 and bytes", { timeout: "10 seconds" }),
          "ping 4217 and bytes"
        )
      })))

  it.live("a log file implies drain and receives the output, created with mode 0600", () =>
    withGuest(bannerEchoGuest("logged banner"), ({ directory, qemu }) =>
      Effect.gen(function*() {
        const logFile = Path.join(directory, "console.log")
        const console = yield* Console.make({ socket: qemu.console, logFile })
        yield* console.waitFor("logged banner", { timeout: "10 seconds" })
        assert.include(Fs.readFileSync(logFile, "utf8"), "logged banner\r\n")
        assert.strictEqual(Fs.statSync(logFile).mode & 0o777, 0o600)
      })))

  it.live("waitFor fails with ConsoleTimeout that carries the recent output", () =>
    withGuest(bannerEchoGuest("boot finished, no prompt"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, drain: true })
        yield* console.waitFor("no prompt", { timeout: "10 seconds" })
        const error = yield* Effect.flip(console.waitFor(/login: /, { timeout: "300 millis" }))
        assert.instanceOf(error, ConsoleTimeout)
        const timeout = error as ConsoleTimeout
        assert.strictEqual(timeout.pattern, "/login: /")
        assert.strictEqual(Duration.toMillis(timeout.timeout), 300)
        assert.include(timeout.recent, "boot finished, no prompt")
        assert.include(timeout.message, "boot finished, no prompt")
        assert.include(timeout.message, "/login: /")
      })))

  it.live("waitFor starts at the cursor: output printed before the call counts, a returned match does not", () =>
    withGuest(bannerEchoGuest("prompt> "), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, drain: true })
        // The banner is drained into recent output before anyone waits for it.
        yield* Effect.repeat(console.recent, {
          until: (recent) => recent.includes("prompt> "),
          schedule: Schedule.spaced("10 millis")
        }).pipe(
          Effect.timeout("10 seconds")
        )
        assert.strictEqual(yield* console.waitFor("prompt> ", { timeout: "1 second" }), "prompt> ")
        const again = yield* Effect.exit(console.waitFor("prompt> ", { timeout: "300 millis" }))
        assert.strictEqual(Exit.isFailure(again), true)
        assert.strictEqual(yield* console.waitFor("prompt> ", { since: "start", timeout: "1 second" }), "prompt> ")
        const now = yield* Effect.fork(console.waitFor("typed", { since: "now", timeout: "10 seconds" }))
        yield* console.write("typed")
        assert.strictEqual(yield* Fiber.join(now), "typed")
      })))

  it.live(
    "with drain, a flooding guest keeps running while the buffer stays within bufferBytes",
    () =>
      withGuest(floodGuest("flood line"), ({ directory, qemu }) =>
        Effect.gen(function*() {
          const logFile = Path.join(directory, "flood.log")
          const bufferBytes = 4096
          const console = yield* Console.make({ socket: qemu.console, logFile, bufferBytes })
          // nobody reads: only the drain keeps output flowing past the few hundred KiB a socket buffers
          const logged = () => Fs.statSync(logFile).size
          // 1 MiB is well past what the socketpair buffers (about 200 KiB each way); the bound only
          // keeps a stalled drain from hanging, and an emulated UART is slow on a loaded machine.
          yield* Effect.sleep("200 millis").pipe(
            Effect.repeat({ until: () => logged() > 1024 * 1024 }),
            Effect.timeout("100 seconds")
          )
          const recent = yield* console.recent
          assert.isAtMost(recent.length, bufferBytes)
          assert.isAbove(recent.length, bufferBytes - 100)
          assert.include(recent, "flood line\r\n")
          assert.strictEqual(
            yield* console.waitFor("flood line\r\n", { since: "now", timeout: "5 seconds" }),
            "flood line\r\n"
          )
          const lines = yield* collectLines(console, 100)
          assert.strictEqual(lines.every((line) => line === "flood line" || "flood line".endsWith(line)), true)
          assert.strictEqual(isRunning(qemu.pid), true)
        })),
    150_000
  )

  it.live("without drain, nothing is read while nobody reads", () =>
    withGuest(floodGuest("quiet"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console })
        yield* Effect.sleep("1 second")
        assert.strictEqual(yield* console.recent, "")
        assert.strictEqual(yield* console.waitFor("quiet\r\n", { timeout: "10 seconds" }), "quiet\r\n")
        assert.isAbove((yield* console.recent).length, 0)
      })))

  it.live("lines splits on \\n and strips \\r", () =>
    withGuest(floodGuest("0123456789"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, drain: true })
        const lines = yield* collectLines(console, 20)
        // the first line may have begun before the stream did
        assert.deepStrictEqual(lines.slice(1), Array(19).fill("0123456789"))
      })))

  it.live("lines cuts a line longer than maxLineLength into pieces", () =>
    withGuest(floodGuest("0123456789"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, maxLineLength: 4 })
        const pieces = yield* collectLines(console, 30)
        const start = pieces.indexOf("89")
        assert.deepStrictEqual(pieces.slice(start + 1, start + 7), ["0123", "4567", "89", "0123", "4567", "89"])
      })))

  it.live("a guest powering off ends lines and fails waitFor with ConsoleClosed", () =>
    withGuest(poweroffGuest("going down"), ({ qemu }) =>
      Effect.gen(function*() {
        // without drain nothing is read before this stream subscribes, so it sees every line
        const console = yield* Console.make({ socket: qemu.console })
        assert.deepStrictEqual(yield* collectLines(console, 10), ["going down"])
        const error = yield* Effect.flip(console.waitFor("never printed", { since: "start", timeout: "10 seconds" }))
        assert.instanceOf(error, ConsoleClosed)
        assert.include((error as ConsoleClosed).recent, "going down")
        assert.deepStrictEqual(yield* qemu.exited, { code: 0, signal: null })
        assert.instanceOf(yield* Effect.flip(console.write("x")), ConsoleClosed)
      })))

  it.live("a guest exit code reaches QEMU's exit status through isa-debug-exit", () =>
    withGuest(
      poweroffGuest("exit 5", 5),
      ({ qemu }) =>
        Effect.gen(function*() {
          const console = yield* Console.make({ socket: qemu.console, drain: true })
          yield* console.waitFor("exit 5", { timeout: "10 seconds" })
          assert.deepStrictEqual(yield* qemu.exited, { code: (5 << 1) | 1, signal: null })
        }),
      ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
    ))

  it.live("close is idempotent, ends lines and fails a pending waitFor with ConsoleClosed", () =>
    withGuest(bannerEchoGuest("closing soon"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, drain: true })
        yield* console.waitFor("closing soon\r\n", { timeout: "10 seconds" })
        const lines = yield* Effect.fork(Stream.runCollect(console.lines))
        const pending = yield* Effect.fork(console.waitFor("never", { timeout: "10 seconds" }))
        // Both forked readers run (and start waiting) before this fiber resumes.
        yield* Effect.yieldNow()
        yield* console.close
        yield* console.close
        assert.instanceOf(yield* Effect.flip(Fiber.join(pending)), ConsoleClosed)
        assert.strictEqual(Chunk.size(yield* Fiber.join(lines)), 0)
        assert.deepStrictEqual(yield* Stream.runCollect(console.lines), Chunk.empty())
      })))

  it.live("releasing the scope destroys the console socket", () =>
    withGuest(bannerEchoGuest("short-lived"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Effect.scoped(Effect.gen(function*() {
          const console = yield* Console.make({ socket: qemu.console, drain: true })
          yield* console.waitFor("short-lived", { timeout: "10 seconds" })
          return console
        }))
        assert.strictEqual(qemu.console.destroyed, true)
        assert.instanceOf(yield* Effect.flip(console.write("late")), ConsoleClosed)
        assert.strictEqual(isRunning(qemu.pid), true)
      })))

  it.live("waitFor anchors ^ at line starts in the text, not at a cursor left mid-line, and lookbehinds see before it", () =>
    withGuest(bannerEchoGuest("anchors ready"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, drain: true })
        yield* console.waitFor("anchors ready\r\n", { timeout: "10 seconds" })
        yield* console.write("echo label=42\r\n")
        yield* console.waitFor("label=", { timeout: "10 seconds" })
        const midLine = yield* Effect.flip(console.waitFor(/^(\d+)\r?$/m, { timeout: "500 millis" }))
        assert.strictEqual(midLine._tag, "ConsoleTimeout")
        assert.strictEqual((yield* console.waitFor(/(?<=label=)\d+/, { timeout: "1 second" }))[0], "42")
        yield* console.write("7\r\n")
        const line = yield* console.waitFor(/^(\d+)\r?$/m, { timeout: "10 seconds" })
        assert.strictEqual(line[1], "7")
      })))

  it.live("error messages escape the guest's control characters, recent keeps them raw", () =>
    withGuest(bannerEchoGuest("~ # \x1b[6n"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, drain: true })
        yield* console.waitFor("\x1b[6n", { timeout: "10 seconds" })
        const timeout = (yield* Effect.flip(console.waitFor("never \x07", { timeout: "300 millis" }))) as ConsoleTimeout
        assert.include(timeout.recent, "~ # \x1b[6n")
        assert.include(timeout.message, "~ # \\u001b[6n")
        assert.notMatch(timeout.message, /[\u0000-\u0009\u000b-\u001f]/)
        yield* console.close
        const closed = yield* Effect.flip(console.waitFor(/never\x1b/, { timeout: "1 second" }))
        assert.strictEqual(closed._tag, "ConsoleClosed")
        assert.include(closed.message, "~ # \\u001b[6n")
        assert.notMatch(closed.message, /[\u0000-\u0009\u000b-\u001f]/)
      })))

  it.live("write fails with ConsoleTimeout when the guest does not take its input", () =>
    withGuest(bannerEchoGuest("about to stop"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, drain: true })
        yield* console.waitFor("about to stop", { timeout: "10 seconds" })
        process.kill(qemu.pid, "SIGSTOP")
        const error = yield* Effect.flip(console.write(new Uint8Array(4 * 1024 * 1024), { timeout: "500 millis" }))
        process.kill(qemu.pid, "SIGCONT")
        assert.instanceOf(error, ConsoleTimeout)
        const timeout = error as ConsoleTimeout
        assert.strictEqual(timeout.operation, "write")
        assert.isDefined(timeout.pendingBytes)
        assert.isAbove(timeout.pendingBytes, 0)
        assert.include(timeout.message, "did not take console input within 500ms")
      })))

  it.live("bad options are a typed InvalidOption error, not a defect", () =>
    withGuest(bannerEchoGuest("options"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, drain: true })
        const failures = [
          yield* Effect.flip(console.write("x", { timeout: "banana" as Duration.DurationInput })),
          yield* Effect.flip(console.write("x", { timeout: -1 })),
          yield* Effect.flip(console.waitFor("x", { timeout: "banana" as Duration.DurationInput })),
          yield* Effect.flip(console.waitFor("x", { since: "later" as Console.WaitForSince })),
          yield* Effect.flip(console.waitFor("x", { failOn: [42] as unknown as Array<string> })),
          yield* Effect.flip(console.reader({ since: "later" as Console.WaitForSince }))
        ]
        for (const failure of failures) {
          assert.strictEqual(failure._tag, "ConsoleError")
          assert.strictEqual((failure as ConsoleError).reason, "InvalidOption")
        }
        assert.include(failures[0].message, "write timeout")
        assert.include(failures[3].message, "since")
      })))

  it.live("a timeout says how many bytes of output after the cursor were dropped unread", () =>
    withGuest(floodGuest("dropping"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, drain: true, bufferBytes: 4096 })
        // The flood is flowing (a loaded machine boots the guest later) before the timed waits.
        yield* Effect.repeat(console.bytesRead, {
          until: (read) => read > 16 * 4096,
          schedule: Schedule.spaced("10 millis")
        }).pipe(Effect.timeout("20 seconds"))
        const error = yield* Effect.flip(console.waitFor("never printed", { timeout: "500 millis" }))
        assert.strictEqual(error._tag, "ConsoleTimeout")
        const timeout = error as ConsoleTimeout
        assert.isDefined(timeout.droppedBytes)
        assert.isAbove(timeout.droppedBytes, 0)
        assert.include(timeout.message, `${timeout.droppedBytes} bytes of output after the cursor were dropped unread`)
        const now = yield* Effect.flip(console.waitFor("never printed", { since: "now", timeout: "3 seconds" }))
        const dropped = (now as ConsoleTimeout).droppedBytes
        assert.isDefined(dropped)
        assert.isAbove(dropped, 0)
      })))

  it.live("waitFor with failOn fails at once with ConsoleFailureMatched naming what matched", () =>
    withGuest(bannerEchoGuest("booting"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, drain: true })
        yield* console.waitFor("booting\r\n", { timeout: "10 seconds" })
        const failOn = ["Kernel panic", /Oops: \w+(?=\r)/]
        yield* console.write("login: \r\nKernel panic - not syncing\r\n")
        // the awaited pattern comes first: it wins
        assert.strictEqual(yield* console.waitFor("login:", { failOn, timeout: "10 seconds" }), "login:")
        const panic = yield* Effect.flip(console.waitFor("login:", { failOn, timeout: "30 seconds" }))
        assert.instanceOf(panic, ConsoleFailureMatched)
        const matched = panic as ConsoleFailureMatched
        assert.strictEqual(matched.failure, `"Kernel panic"`)
        assert.strictEqual(matched.matched, "Kernel panic")
        assert.include(matched.message, "failure pattern \"Kernel panic\"")
        yield* console.write("Oops: general\r\n")
        const oops = yield* Effect.flip(console.waitFor("login:", { failOn, timeout: "30 seconds" }))
        assert.strictEqual((oops as ConsoleFailureMatched).matched, "Oops: general")
      })))

  it.live("a reader's waitFor moves only its own cursor", () =>
    withGuest(bannerEchoGuest("two cursors"), ({ qemu }) =>
      Effect.gen(function*() {
        const console = yield* Console.make({ socket: qemu.console, drain: true })
        yield* console.waitFor("two cursors\r\n", { timeout: "10 seconds" })
        const watcher = yield* console.reader()
        const panic = yield* Effect.fork(watcher.waitFor("panic", { timeout: "10 seconds" }))
        yield* console.write("one two panic\r\n")
        assert.strictEqual(yield* Fiber.join(panic), "panic")
        // the watcher went past "one" and "two"; the main cursor did not move
        assert.strictEqual(yield* console.waitFor("one", { timeout: "1 second" }), "one")
        assert.isAbove(yield* watcher.position, yield* console.bytesRead.pipe(Effect.map((n) => n - 10)))
        assert.strictEqual(
          (yield* Effect.flip(watcher.waitFor("two", { timeout: "300 millis" })))._tag,
          "ConsoleTimeout"
        )
        const fromStart = yield* console.reader({ since: "start" })
        assert.strictEqual(yield* fromStart.waitFor("two cursors", { timeout: "1 second" }), "two cursors")
        assert.strictEqual(yield* console.waitFor("two", { timeout: "1 second" }), "two")
      })))

  // Real QEMU cannot be made to split a word across reads on purpose; a socket server can.
  it.scopedLive("waitFor matches text split across reads, over a UNIX socket path", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory
      const path = Path.join(directory, "console.sock")
      const server = Net.createServer((peer) => {
        peer.write("boot: he")
        setTimeout(() => peer.write("llo wor"), 50)
        setTimeout(() => peer.write("ld\r\n"), 100)
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => {
          server.listen(path, () => resume(Effect.void))
        }),
        () =>
          Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
          }).pipe(Effect.timeout("2 seconds"), Effect.ignore)
      )
      const console = yield* Console.make({ path })
      assert.strictEqual(yield* console.waitFor("hello world", { timeout: "5 seconds" }), "hello world")
      yield* console.close
    }))

  it.scopedLive("connects to a console QEMU serves over TCP", () =>
    Effect.gen(function*() {
      const port = yield* Effect.async<number>((resume) => {
        const probe = Net.createServer().listen(0, "127.0.0.1", () => {
          const { port } = probe.address() as Net.AddressInfo
          probe.close(() => resume(Effect.succeed(port)))
        })
      })
      const directory = yield* temporaryDirectory
      const image = yield* writeGuest(directory, bannerEchoGuest("on tcp"))
      yield* Machine.make({
        args: [...floppyBootArgs(image), "-serial", `tcp:127.0.0.1:${port},server=on,wait=off`]
      })
      const console = yield* Console.make({ host: "127.0.0.1", port, connectTimeout: "5 seconds" })
      // the guest's banner may be printed before the connection (wait=off): ask until it echoes
      const echoed = yield* Effect.zipRight(
        console.write("typed over tcp"),
        console.waitFor("typed over tcp", { timeout: "500 millis" })
      ).pipe(Effect.retry({ times: 20 }))
      assert.strictEqual(echoed, "typed over tcp")
    }))

  it.live("connecting to a path with no listener fails with ConsoleError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.scoped(Console.make({ path: "/nonexistent/console.sock" })))
      assert.strictEqual(error._tag, "ConsoleError")
      assert.strictEqual(error.reason, "Connect")
      const bad = yield* Effect.flip(
        Effect.scoped(Console.make({ path: "/nonexistent/console.sock", connectTimeout: 0 }))
      )
      assert.strictEqual(bad.reason, "InvalidOption")
    }))
})

/** Boots a guest sector under a Machine with its console on a socketpair, for the scope. */
const bootMachine = (guest: Uint8Array, console: NonNullable<Machine.MachineConfigInput["console"]> = {}) =>
  Effect.gen(function*() {
    const directory = yield* temporaryDirectory
    const image = yield* writeGuest(directory, guest)
    return yield* Machine.make({ console, args: floppyBootArgs(image) })
  })

/** Listens on `path` for the scope. */
const listen = (server: Net.Server, path: string) =>
  Effect.acquireRelease(
    Effect.async<void>((resume) => {
      server.listen(path, () => resume(Effect.void))
    }),
    () =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
      }).pipe(Effect.timeout("2 seconds"), Effect.ignore)
  )

/** Waits until the console's reader has stopped reading: its byte count holds still for 200 ms. */
const stalled = (console: Console.ConsoleService) =>
  Effect.gen(function*() {
    let last = -1
    while (true) {
      const read = yield* console.bytesRead
      if (read === last) return
      last = read
      yield* Effect.sleep("200 millis")
    }
  }).pipe(Effect.timeout("10 seconds"))

const occurrences = (text: string, of: string) => text.split(of).length - 1

describe("Console on a stopping machine", () => {
  it.scopedLive("what was written before wait() reaches the guest, and its last words are kept", () =>
    Effect.gen(function*() {
      const vm = yield* bootMachine(echoUntilEnterGuest("last words"), { bufferBytes: 256 * 1024 })
      yield* vm.console.waitFor("last words", { timeout: "10 seconds" })
      // more than QEMU takes at once (the UART's 16-byte FIFO): most of it waits in the socket
      const typed = "a".repeat(32 * 1024)
      yield* vm.console.write(`${typed}\r`)
      // The guest echoes 32 KiB through an emulated UART: seconds on a quiet machine, far more
      // on a loaded one. The bound only keeps a lost byte (no Enter ever seen) from hanging.
      yield* vm.wait({ timeout: "90 seconds" })
      assert.strictEqual(Option.getOrThrow(yield* vm.exitStatus).code, 0)
      const recent = yield* vm.console.recent
      assert.include(recent, typed)
      assert.strictEqual(occurrences(recent, "last words"), 2)
    }))

  it.scopedLive("wait() keeps reading until QEMU exits: every line printed before the power-off is logged", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory
      const logFile = Path.join(directory, "last.log")
      const vm = yield* bootMachine(floodThenPoweroffGuest("printed on the way down", 5000), { logFile })
      yield* vm.console.waitFor("printed on the way down", { timeout: "10 seconds" })
      yield* vm.wait({ timeout: "20 seconds" })
      assert.strictEqual(Option.getOrThrow(yield* vm.exitStatus).code, 0)
      assert.strictEqual(occurrences(Fs.readFileSync(logFile, "utf8"), "printed on the way down\r\n"), 5000)
      assert.match(yield* vm.console.recent, /printed on the way down\r\n$/)
    }))

  it.scopedLive("wait() does not deadlock on a console nobody reads", () =>
    Effect.gen(function*() {
      // ~600 KB: more than the socket buffers hold, so the guest blocks until someone reads
      const vm = yield* bootMachine(floodThenPoweroffGuest("unread flood", 40000))
      yield* vm.wait({ timeout: "30 seconds" })
      assert.deepStrictEqual(Option.getOrThrow(yield* vm.exitStatus), { code: 0, signal: null })
      assert.match(yield* vm.console.recent, /unread flood\r\n$/)
    }))

  // Real QEMU cannot print the 16 MiB that the reader takes in before it pushes back; a socket server can.
  it.scopedLive("drain frees a console stalled behind a lines reader that does not read", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory
      const path = Path.join(directory, "stall.sock")
      const total = 48 * 1024 * 1024
      const server = Net.createServer((peer) => {
        const line = Buffer.from("x".repeat(1023) + "\n")
        const block = Buffer.concat(Array(1024).fill(line))
        let sent = 0
        const more = (): void => {
          while (sent < total) {
            sent += block.length
            if (!peer.write(block)) {
              peer.once("drain", more)
              return
            }
          }
          peer.end()
        }
        more()
      })
      yield* listen(server, path)
      const console = yield* Console.make({ path })
      yield* Effect.forkScoped(Stream.runForEach(console.lines, () => Effect.never))
      yield* stalled(console)
      assert.isBelow(yield* console.bytesRead, total)
      yield* console.drain
      yield* console.ended.pipe(Effect.timeout("20 seconds"))
      assert.strictEqual(yield* console.bytesRead, total)
    }))
})
