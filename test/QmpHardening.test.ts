/**
 * What a QMP peer sends and what a caller passes can neither crash the controller nor change a
 * value: deep JSON, throwing predicates, 64-bit integers, id-less replies, hostile error text,
 * odd timeouts, floods of large events, a TCP peer that never accepts.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import { spawn } from "node:child_process"
import * as Net from "node:net"
import * as Qmp from "../src/Qmp.js"
import { untyped } from "../src/QmpCommands.js"
import { answerDefault, fakePeer } from "./kit/fakePeer.js"
import { rawQemu } from "./kit/qemu.js"

const deep = (depth: number) => "[".repeat(depth) + "]".repeat(depth)
const connect = (path: string, options: Qmp.QmpOptions = {}) => Qmp.make({ _tag: "Unix", path }, options)
const qemu = (options: Qmp.QmpOptions = {}) =>
  Effect.flatMap(rawQemu(), (child) => Qmp.make({ _tag: "Duplex", duplex: child.monitor }, options))

/** Runs `effect` with a logger that keeps every message, and returns them with its result. */
const withLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ message }) => {
      lines.push(Array.isArray(message) ? message.join(" ") : String(message))
    })
    const result = yield* effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
    return [result, lines] as const
  })

/** A fake peer that answers `query-status` with the given raw line instead of a reply. */
const answering = (line: (id: unknown) => string) =>
  fakePeer({
    strict: true,
    onRequest: (request, peer) =>
      request.execute === "query-status" ? peer.sendRaw(line(request.id)) : answerDefault(request, peer)
  })

describe("A peer's deep JSON never reaches a throwing formatter", () => {
  it.scopedLive("a bare array nested 100,000 deep fails the pending call with NotQmp", () =>
    Effect.gen(function*() {
      const qmp = yield* connect(yield* answering(() => deep(100_000) + "\r\n"))
      const error = yield* Effect.flip(qmp.execute("query-status"))
      assert.strictEqual(error._tag, "QmpProtocolError")
      assert.strictEqual((error as { reason: string }).reason, "NotQmp")
      assert.include(error.message, "nested too deeply to print")
    }))

  it.scopedLive("an object nested 100,000 deep that is no QMP message fails with NotQmp", () =>
    Effect.gen(function*() {
      const qmp = yield* connect(yield* answering(() => `{"foo": ${deep(100_000)}}\r\n`))
      const error = yield* Effect.flip(qmp.execute("query-status"))
      assert.strictEqual((error as { reason: string }).reason, "NotQmp")
    }))

  it.scopedLive("an event whose name is a deep array fails with NotQmp", () =>
    Effect.gen(function*() {
      const qmp = yield* connect(yield* answering(() => `{"event": ${deep(100_000)}}\r\n`))
      const error = yield* Effect.flip(qmp.execute("query-status"))
      assert.strictEqual((error as { reason: string }).reason, "NotQmp")
    }))

  it.scopedLive("a deep object before the greeting and a deep greeting fail the connection typed", () =>
    Effect.gen(function*() {
      for (const first of [`{"x": ${deep(100_000)}}`, `{"QMP": {"version": ${deep(100_000)}}}`]) {
        const path = yield* fakePeer({ greet: false, onConnect: (peer) => peer.sendRaw(first + "\r\n") })
        const error = yield* Effect.flip(connect(path))
        assert.strictEqual(error._tag, "QmpConnectError")
        assert.strictEqual(error.reason, "BadGreeting")
      }
    }))

  it.scopedLive("a deep reply with a never-issued id is dropped with a warning; the call gets its own reply", () =>
    Effect.gen(function*() {
      const path = yield* answering((id) =>
        `{"return": ${deep(100_000)}, "id": 777777}\r\n` + JSON.stringify({ return: { status: "ok" }, id }) + "\r\n"
      )
      const [reply, logs] = yield* withLogs(
        Effect.flatMap(connect(path), (qmp) => qmp.execute("query-status") as Effect.Effect<unknown, unknown>)
      )
      assert.deepStrictEqual(reply, { status: "ok" })
      assert.isTrue(logs.some((line) => line.includes("dropped a QMP reply to a request never sent")))
    }))

  it.scopedLive("with decodeReplies a deep return is a QmpReplyError and the session stays open", () =>
    Effect.gen(function*() {
      const qmp = yield* connect(
        yield* answering((id) => `{"return": {"status": ${deep(100_000)}}, "id": ${JSON.stringify(id)}}\r\n`),
        { decodeReplies: true }
      )
      const error = yield* Effect.flip(qmp.execute("query-status"))
      assert.strictEqual(error._tag, "QmpReplyError")
      assert.isTrue(yield* qmp.isOpen)
    }))
})

describe("A caller's predicate that throws fails only its own wait", () => {
  it.scopedLive("a match reading data.reason of STOP fails with QmpMatchError; another waiter gets STOP", () =>
    Effect.gen(function*() {
      const qmp = yield* qemu()
      const throwing = yield* Effect.fork(
        qmp.waitEvent("STOP", {
          buffered: false,
          match: (event: { readonly data: unknown }) => (event.data as { reason: string }).reason === "x"
        })
      )
      const plain = yield* Effect.fork(qmp.waitEvent("STOP", { buffered: false }))
      yield* Effect.yieldNow()
      yield* qmp.execute("stop")
      const error = yield* Effect.flip(Fiber.join(throwing))
      assert.strictEqual(error._tag, "QmpMatchError")
      assert.include(error.message, "STOP")
      const stop = yield* Fiber.join(plain)
      assert.strictEqual(stop.event, "STOP")
      const status = (yield* qmp.execute("query-status")) as { status: string }
      assert.strictEqual(status.status, "paused")
    }))
})

describe("64-bit integers travel exactly", () => {
  const exact = [9223372035781033984n, 9007199254740993n, 2n ** 63n - 1n]

  it.scopedLive("bigint arguments reach QEMU exactly and come back from qom-get as the same bigint", () =>
    Effect.gen(function*() {
      const qmp = yield* qemu()
      for (const [index, value] of exact.entries()) {
        yield* qmp.execute("object-add", { "qom-type": "iothread", id: `io${index}`, "poll-max-ns": value } as never)
        const read = yield* qmp.execute("qom-get", { path: `/objects/io${index}`, property: "poll-max-ns" })
        assert.strictEqual(read, value)
      }
    }))

  it.scopedLive("a number beyond 2^53 is sent as its exact integer, not its shortest decimal form", () =>
    Effect.gen(function*() {
      const qmp = yield* qemu()
      const value = 9223372035781033984 // exactly representable; printed "9223372035781034000" by JSON
      yield* qmp.execute("object-add", { "qom-type": "iothread", id: "io", "poll-max-ns": value } as never)
      const read = yield* qmp.execute("qom-get", { path: "/objects/io", property: "poll-max-ns" })
      assert.strictEqual(read, BigInt(value))
      // Small values stay plain numbers.
      yield* qmp.execute("qom-set", { path: "/objects/io", property: "poll-max-ns", value: 42 })
      assert.strictEqual(yield* qmp.execute("qom-get", { path: "/objects/io", property: "poll-max-ns" }), 42)
    }))

  it.scopedLive("an unsafe integer in a reply from a peer comes back as the exact bigint", () =>
    Effect.gen(function*() {
      const qmp = yield* connect(
        yield* answering((id) => `{"return": {"n": 9007199254740993, "s": "9007199254740993"}, "id": ${id}}\r\n`)
      )
      const reply: unknown = yield* qmp.execute("query-status")
      assert.deepStrictEqual(reply, { n: 9007199254740993n, s: "9007199254740993" })
    }))

  it.scopedLive("NaN, a function or a cycle in the arguments is a QmpArgumentError naming the member", () =>
    Effect.gen(function*() {
      const qmp = yield* qemu()
      const cycle: Record<string, unknown> = {}
      cycle.self = cycle
      for (
        const [args, path] of [[{ x: NaN }, "arguments.x"], [{ f: () => 1 }, "arguments.f"], [
          cycle,
          "arguments.self"
        ]] as const
      ) {
        const error = yield* Effect.flip(qmp.execute("qom-list", args as never))
        assert.strictEqual(error._tag, "QmpArgumentError")
        if (error._tag === "QmpArgumentError") {
          assert.strictEqual(error.reason, "NotSerializable")
          assert.strictEqual(error.path, path)
        }
      }
      assert.isTrue(yield* qmp.isOpen)
    }))
})

describe("Requests QEMU cannot parse and replies without an id", () => {
  it.scopedLive("arguments nested past QEMU's limit fail before sending; QEMU keeps answering", () =>
    Effect.gen(function*() {
      const qmp = yield* qemu()
      let nested: unknown = "x"
      for (let i = 0; i < 1100; i++) nested = [nested]
      const error = yield* Effect.flip(qmp.execute("qom-list", { path: nested } as never))
      assert.strictEqual(error._tag, "QmpArgumentError")
      assert.include(error.message, "nested deeper than QMP's limit of 1024")
      // Nothing was sent that QEMU would answer with a storm of id-less errors: the next reply is ours.
      const status = (yield* qmp.execute("query-status")) as { status: string }
      assert.strictEqual(status.status, "running")
      assert.isTrue(yield* qmp.isOpen)
    }))

  it.scopedLive("an error reply without an id is dropped with a warning and the session stays usable", () =>
    Effect.gen(function*() {
      const path = yield* answering((id) =>
        `{"error": {"class": "GenericError", "desc": "JSON parse error"}}\r\n` +
        JSON.stringify({ return: { status: "ok" }, id }) + "\r\n"
      )
      const [reply, logs] = yield* withLogs(
        Effect.flatMap(connect(path), (qmp) => qmp.execute("query-status") as Effect.Effect<unknown, unknown>)
      )
      assert.deepStrictEqual(reply, { status: "ok" })
      assert.isTrue(logs.some((line) => line.includes("without an id")))
    }))
})

describe("Error text from the peer is escaped", () => {
  it.scopedLive("class and desc with terminal escapes and BiDi controls print escaped; no desc reads clearly", () =>
    Effect.gen(function*() {
      const path = yield* fakePeer({
        strict: true,
        onRequest: (request, peer) => {
          if (request.execute === "evil") {
            peer.send({ error: { class: "\u001b[2JGenericError", desc: "a\u202eb\u001b]0;x\u0007" }, id: request.id })
          } else if (request.execute === "bare") {
            peer.send({ error: { class: "GenericError" }, id: request.id })
          } else answerDefault(request, peer)
        }
      })
      const qmp = yield* connect(path)
      const evil = yield* Effect.flip(qmp.execute(untyped("evil")))
      assert.notMatch(evil.message, /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/)
      assert.include(evil.message, "\\u001b[2JGenericError")
      const bare = yield* Effect.flip(qmp.execute(untyped("bare")))
      assert.include(bare.message, "GenericError: (QEMU gave no description)")
      assert.notInclude(bare.message, "undefined")
    }))
})

describe("Every timeout means what it says", () => {
  it.scopedLive("30-day session and per-call timeouts do not fire at once", () =>
    Effect.gen(function*() {
      const qmp = yield* qemu({ commandTimeout: "30 days", greetingTimeout: "30 days" })
      assert.deepInclude(yield* qmp.execute("query-status", undefined, { timeout: "30 days" }), { status: "running" })
      const waiting = yield* Effect.fork(qmp.waitEvent(untyped("NEVER"), { timeout: "30 days" }))
      yield* Effect.sleep("200 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(waiting)))
      yield* Fiber.interrupt(waiting)
    }))

  it.scopedLive("a timeout that is no positive duration is a typed error, never a defect", () =>
    Effect.gen(function*() {
      const qmp = yield* qemu()
      for (const timeout of ["banana", -5, 0, NaN]) {
        const onExecute = yield* Effect.flip(qmp.execute("query-status", undefined, { timeout: timeout as never }))
        assert.strictEqual(onExecute._tag, "QmpArgumentError")
        const onWait = yield* Effect.flip(qmp.waitEvent("STOP", { timeout: timeout as never }))
        assert.strictEqual(onWait._tag, "QmpArgumentError")
        assert.include(onWait.message, "timeout")
      }
      const child = yield* rawQemu()
      const error = yield* Effect.flip(
        Qmp.make({ _tag: "Duplex", duplex: child.monitor }, { commandTimeout: "-1 seconds" as never })
      )
      assert.strictEqual(error.reason, "InvalidOptions")
      assert.include(error.message, "commandTimeout")
    }))

  it.scopedLive("connecting over TCP to a peer that never accepts gives up at greetingTimeout", () =>
    Effect.gen(function*() {
      // A listener with the smallest backlog that never accepts: once its queue is full, the
      // kernel drops further SYNs and a connect hangs for minutes unless the client bounds it.
      const listener = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawn("python3", [
            "-c",
            "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)"
          ], {
            stdio: ["ignore", "pipe", "inherit"]
          })
        ),
        (child) => Effect.sync(() => child.kill("SIGKILL"))
      )
      const port = yield* Effect.async<number>((resume) => {
        listener.stdout!.once("data", (chunk: Buffer) => resume(Effect.succeed(Number(chunk.toString().trim()))))
      })
      const fillers: Array<Net.Socket> = []
      yield* Effect.addFinalizer(() => Effect.sync(() => fillers.forEach((socket) => socket.destroy())))
      for (let i = 0; i < 4; i++) fillers.push(Net.createConnection({ host: "127.0.0.1", port }).on("error", () => {}))
      yield* Effect.sleep("100 millis")
      const started = Date.now()
      const error = yield* Effect.flip(
        Qmp.make({ _tag: "Tcp", host: "127.0.0.1", port }, { greetingTimeout: "1 second" })
      )
      assert.strictEqual(error._tag, "QmpConnectError")
      // Either the connect or the greeting wait gave up at the bound, never minutes later.
      assert.isBelow(Date.now() - started, 5_000)
    }))
})

describe("Event buffers are bounded by bytes too", () => {
  it.scopedLive("large events beyond eventBufferBytes drop the oldest, with one warning for the burst", () =>
    Effect.gen(function*() {
      const big = "x".repeat(100 * 1024)
      const path = yield* fakePeer({
        strict: true,
        onRequest: (request, peer) => {
          if (request.execute === "flood") {
            let text = ""
            for (let i = 0; i < 100; i++) {
              text += JSON.stringify({ event: "BIG", data: { i, big }, timestamp: { seconds: 1, microseconds: i } }) +
                "\r\n"
            }
            peer.sendRaw(text)
          }
          answerDefault(request, peer)
        }
      })
      const [kept, logs] = yield* withLogs(Effect.scoped(Effect.gen(function*() {
        const qmp = yield* connect(path, { eventBufferBytes: 1024 * 1024 })
        const subscription = yield* qmp.subscribe
        yield* qmp.execute(untyped("flood"))
        const mailbox = yield* qmp.takeEvents
        const first = yield* subscription.take
        return { mailbox, first }
      })))
      assert.isAtMost(kept.mailbox.length, 10)
      assert.isAtLeast(kept.mailbox.length, 9)
      assert.deepStrictEqual((kept.mailbox.at(-1)!.data as { i: number }).i, 99)
      assert.isAtLeast((kept.first.data as { i: number }).i, 89)
      const warnings = logs.filter((line) => line.includes("QMP events nobody took"))
      assert.isAtLeast(warnings.length, 1)
      assert.isAtMost(warnings.length, 2)
    }))
})

describe("executeAndWait consumes the event it waited for", () => {
  it.scopedLive("a later waitEvent does not return the old STOP", () =>
    Effect.gen(function*() {
      const qmp = yield* qemu()
      const [, stop] = yield* qmp.executeAndWait("stop", { event: "STOP" })
      assert.strictEqual(stop.event, "STOP")
      const again = yield* Effect.flip(qmp.waitEvent("STOP", { timeout: "300 millis" }))
      assert.strictEqual(again._tag, "QmpTimeout")
      yield* qmp.execute("cont")
      yield* qmp.execute("stop")
      assert.strictEqual((yield* qmp.waitEvent("STOP")).event, "STOP")
    }))
})
