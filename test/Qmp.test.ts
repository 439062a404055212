import { NodeSocket } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { execFileSync } from "node:child_process"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Qmp from "../src/Qmp.js"
import { untyped } from "../src/QmpCommands.js"
import type { QmpExecuteError } from "../src/QmpError.js"
import * as QmpMessage from "../src/QmpMessage.js"
import { answerDefault, fakePeer } from "./kit/fakePeer.js"
import { qemuBinary, rawQemu, tempDir } from "./kit/qemu.js"

const connectRaw = (extraArgs: ReadonlyArray<string> = [], options: Qmp.QmpOptions = {}) =>
  Effect.gen(function*() {
    const qemu = yield* rawQemu(extraArgs)
    const qmp = yield* Qmp.make({ _tag: "Duplex", duplex: qemu.monitor }, options)
    return { qemu, qmp }
  })

describe("Qmp against real QEMU", () => {
  it.scopedLive("reports the same version in its greeting as --version prints", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw()
      const printed = execFileSync(qemuBinary, ["--version"], { encoding: "utf8" })
      const version = /version (\d+\.\d+\.\d+)/.exec(printed)?.[1]
      assert.strictEqual(qmp.version, version)
      assert.isTrue(printed.includes(qmp.greeting.QMP.version.package))
    }))

  it.scopedLive("query-status returns the run state", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw()
      const status = (yield* qmp.execute("query-status")) as { status: string; running: boolean }
      assert.strictEqual(status.status, "running")
      assert.strictEqual(status.running, true)
    }))

  it.scopedLive("an unknown command fails with class CommandNotFound when QEMU is asked (checkCommands off)", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw([], { checkCommands: false })
      const error = yield* Effect.flip(qmp.execute(untyped("no-such-command")))
      assert.strictEqual(error._tag, "QmpCommandError")
      if (error._tag === "QmpCommandError") {
        assert.strictEqual(error.errorClass, "CommandNotFound")
        assert.strictEqual(error.command, "no-such-command")
        assert.include(error.desc, "no-such-command")
      }
      const raw = yield* qmp.raw("no-such-command")
      assert.deepStrictEqual((raw as { error: { class: string } }).error.class, "CommandNotFound")
    }))

  it.scopedLive("stop and cont raise STOP and RESUME, caught by waitEvent with a match", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw()
      yield* qmp.execute("stop")
      const stop = yield* qmp.waitEvent("STOP", { timeout: "5 seconds" })
      assert.strictEqual(stop.event, "STOP")
      assert.isAbove(stop.timestamp.seconds, 0)
      const [, resume] = yield* qmp.executeAndWait("cont", { event: "RESUME", timeout: "5 seconds" })
      assert.strictEqual(resume.event, "RESUME")
      yield* qmp.execute("stop")
      // A pattern that does not match leaves the event in the mailbox for a later wait. (STOP has
      // no data, so this pattern does not even compile.)
      const missed = yield* Effect.flip(
        // @ts-expect-error: STOP carries no data
        qmp.waitEvent("STOP", { match: { data: { nonexistent: 1 } }, timeout: "300 millis" })
      )
      assert.strictEqual(missed._tag, "QmpTimeout")
      const stopAgain = yield* qmp.waitEvent(["RESUME", "STOP"], { match: { event: "STOP" }, timeout: "5 seconds" })
      assert.strictEqual(stopAgain.event, "STOP")
      const status = (yield* qmp.execute("query-status")) as { status: string }
      assert.strictEqual(status.status, "paused")
    }))

  it.scopedLive("100 fibers executing at once each get their own reply", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw()
      // Replies that differ per request: the error names the path asked for, and each
      // command-line option has its own parameter list.
      const options = (yield* qmp.execute("query-command-line-options")).map((entry) => entry.option)
      const results = yield* Effect.forEach(
        Array.from({ length: 100 }, (_, i) => i),
        (i): Effect.Effect<string, QmpExecuteError> =>
          i % 2 === 0
            ? Effect.match(qmp.execute("qom-list", { path: `/missing-${i}` }), {
              onFailure: (error) => error.message,
              onSuccess: () => "unexpected success"
            })
            : Effect.map(
              qmp.execute("query-command-line-options", { option: options[i % options.length] }),
              (reply): string => reply[0].option
            ),
        { concurrency: "unbounded" }
      )
      results.forEach((result, i) => {
        if (i % 2 === 0) assert.include(result, `'/missing-${i}'`)
        else assert.strictEqual(result, options[i % options.length])
      })
    }))

  it.scopedLive("a timeout on one call does not disturb the next", () =>
    Effect.gen(function*() {
      const { qemu, qmp } = yield* connectRaw()
      process.kill(qemu.pid, "SIGSTOP")
      const error = yield* Effect.flip(qmp.execute("query-status", undefined, { timeout: "200 millis" }))
      assert.strictEqual(error._tag, "QmpTimeout")
      process.kill(qemu.pid, "SIGCONT")
      // The late reply to the timed-out call must not be handed to this one.
      const name = (yield* qmp.execute("query-name")) as Record<string, unknown>
      assert.deepStrictEqual(name, {})
      const status = (yield* qmp.execute("query-status")) as { status: string }
      assert.strictEqual(status.status, "running")
    }))

  it.scopedLive("interrupting a caller leaves the connection usable", () =>
    Effect.gen(function*() {
      const { qemu, qmp } = yield* connectRaw()
      process.kill(qemu.pid, "SIGSTOP")
      const fiber = yield* Effect.fork(qmp.execute("query-status"))
      // The forked call runs (and writes its request) before this fiber resumes.
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(fiber)
      process.kill(qemu.pid, "SIGCONT")
      const kvm = (yield* qmp.execute("query-kvm")) as { present: boolean }
      assert.isBoolean(kvm.present)
    }))

  it.scopedLive("quit succeeds even though QEMU closes the socket, then calls fail at once", () =>
    Effect.gen(function*() {
      const { qemu, qmp } = yield* connectRaw()
      yield* qmp.execute("quit")
      const reason = yield* qmp.closed
      assert.strictEqual(reason._tag, "QmpDisconnected")
      const exit = yield* qemu.exited
      assert.strictEqual(exit.code, 0)
      const error = yield* Effect.flip(qmp.execute("query-status"))
      assert.strictEqual(error._tag, "QmpDisconnected")
      assert.isFalse(yield* qmp.isOpen)
    }))

  it.scopedLive("a pending call and an event wait fail with QmpDisconnected when QEMU is killed", () =>
    Effect.gen(function*() {
      const { qemu, qmp } = yield* connectRaw()
      process.kill(qemu.pid, "SIGSTOP")
      const call = yield* Effect.fork(qmp.execute("query-status", undefined, { timeout: Duration.infinity }))
      const wait = yield* Effect.fork(qmp.waitEvent(untyped("NEVER"), { timeout: Duration.infinity }))
      yield* Effect.yieldNow()
      process.kill(qemu.pid, "SIGKILL")
      const callExit = yield* Fiber.await(call)
      const waitExit = yield* Fiber.await(wait)
      const callError = yield* Effect.flip(callExit)
      const waitError = yield* Effect.flip(waitExit)
      assert.strictEqual(callError._tag, "QmpDisconnected")
      assert.strictEqual(waitError._tag, "QmpDisconnected")
    }))

  it.scopedLive("the event stream delivers every event to every subscriber and ends with the connection", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw()
      // Subscribed before anything is executed: the subscriptions exist once `subscribe` returns.
      const collect = (subscription: Qmp.EventSubscription) =>
        subscription.stream.pipe(Stream.map((event) => event.event), Stream.runCollect, Effect.fork)
      const first = yield* collect(yield* qmp.subscribe)
      const second = yield* collect(yield* qmp.subscribe)
      yield* qmp.execute("stop")
      yield* qmp.execute("cont")
      yield* qmp.execute("quit")
      const a = Chunk.toReadonlyArray(yield* Fiber.join(first))
      const b = Chunk.toReadonlyArray(yield* Fiber.join(second))
      assert.deepStrictEqual(a, ["STOP", "RESUME", "SHUTDOWN"])
      assert.deepStrictEqual(b, a)
    }))

  it.scopedLive("an installed tracer gets a span per execute, named for the command", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw()
      const spans: Array<{ name: string; attributes: ReadonlyMap<string, unknown> }> = []
      const builtin = yield* Effect.tracer
      const recording = Tracer.make({
        span: (name, parent, context, links, startTime, kind) => {
          const span = builtin.span(name, parent, context, links, startTime, kind)
          spans.push(span)
          return span
        },
        context: (f) => f()
      })
      yield* qmp.execute("query-status").pipe(Effect.withTracer(recording))
      yield* Effect.flip(qmp.execute(untyped("no-such-command"))).pipe(Effect.withTracer(recording))
      assert.deepStrictEqual(spans.map((span) => span.name), [
        "Qmp.execute query-status",
        "Qmp.execute no-such-command"
      ])
      assert.strictEqual(spans[0].attributes.get("qmp.command"), "query-status")
    }))

  it.scopedLive("negotiates oob when offered and asked, and runs exec-oob", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw([], { oob: true })
      assert.deepStrictEqual(qmp.capabilities, ["oob"])
      const reply = yield* qmp.execute("yank", { instances: [] }, { oob: true })
      assert.deepStrictEqual(reply, {})
    }))

  it.scopedLive("checkArgs rejects a bad member before sending, naming it", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw([], { checkArgs: true })
      const unknown = yield* Effect.flip(qmp.execute("qom-list-types", { abstrac: true } as never))
      assert.strictEqual(unknown._tag, "QmpArgumentError")
      if (unknown._tag === "QmpArgumentError") {
        assert.strictEqual(unknown.reason, "UnknownMember")
        assert.strictEqual(unknown.path, "abstrac")
      }
      const wrongType = yield* Effect.flip(qmp.execute("qom-list-types", { abstract: "yes" } as never))
      assert.strictEqual(wrongType._tag === "QmpArgumentError" && wrongType.reason, "WrongType")
      const types = yield* qmp.execute("qom-list-types", { abstract: true })
      assert.isAbove(types.length, 10)
    }))

  it.scopedLive("decodeReplies decodes real replies with the generated schemas", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw([], { decodeReplies: true })
      const status = yield* qmp.execute("query-status")
      assert.strictEqual(status.status, "running")
      const version = yield* qmp.execute("query-version")
      assert.strictEqual(`${version.qemu.major}.${version.qemu.minor}.${version.qemu.micro}`, qmp.version)
    }))

  it.scopedLive("converts foo_bar keys to foo-bar when asked", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw()
      const info = (yield* qmp.execute("query-command-line-options", { option: "chardev" })) as Array<unknown>
      assert.strictEqual(info.length, 1)
      const error = yield* Effect.flip(
        qmp.execute("qom-list-types", { abstract_x: true } as never, { convertKeys: true })
      )
      assert.include(error.message, "abstract-x")
    }))

  it.scopedLive("nextEvent takes the oldest event whatever its name, or waits for the next", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw()
      yield* qmp.execute("stop")
      const buffered = yield* qmp.nextEvent({ timeout: "5 seconds" })
      assert.strictEqual(buffered.event, "STOP")
      const waiting = yield* Effect.fork(qmp.nextEvent({ timeout: "5 seconds" }))
      yield* Effect.sleep("50 millis")
      yield* qmp.execute("cont")
      const arrived = yield* Fiber.join(waiting)
      assert.strictEqual(arrived.event, "RESUME")
      const none = yield* Effect.flip(qmp.nextEvent({ timeout: "100 millis" }))
      assert.strictEqual(none._tag, "QmpTimeout")
      assert.include(none.message, "next event")
    }))

  it.scopedLive("nextEvent with buffered false ignores what the mailbox holds", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw()
      yield* qmp.execute("stop")
      const fresh = yield* Effect.fork(qmp.nextEvent({ buffered: false, timeout: "5 seconds" }))
      yield* Effect.sleep("50 millis")
      yield* qmp.execute("cont")
      assert.strictEqual((yield* Fiber.join(fresh)).event, "RESUME")
    }))

  it.scopedLive("nextEvents waits for an event, then takes every event the mailbox holds", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw()
      const waiting = yield* Effect.fork(qmp.nextEvents({ timeout: "5 seconds" }))
      yield* Effect.sleep("50 millis")
      yield* qmp.execute("stop")
      assert.deepStrictEqual((yield* Fiber.join(waiting)).map((event) => event.event), ["STOP"])
      yield* qmp.execute("cont")
      yield* qmp.execute("stop")
      const both = yield* qmp.nextEvents({ timeout: "5 seconds" })
      assert.deepStrictEqual(both.map((event) => event.event), ["RESUME", "STOP"])
      assert.deepStrictEqual(yield* qmp.takeEvents, [])
    }))

  it.scopedLive("hmp returns the text HMP prints, on the CPU asked for", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw(["-M", "pc", "-S", "-smp", "2"])
      assert.strictEqual((yield* qmp.hmp("info status")).trim(), "VM status: paused (prelaunch)")
      const unknown = yield* qmp.hmp("no-such-hmp-command")
      assert.include(unknown, "unknown command")
      const registers = yield* qmp.hmp("info registers", { cpuIndex: 1 })
      assert.match(registers, /CPU#1/)
      const refused = yield* Effect.flip(qmp.hmp("info registers", { cpuIndex: 7 }))
      assert.strictEqual(refused._tag, "QmpCommandError")
    }))

  it.scopedLive("raw replies come as QEMU meant them, without the client's id", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw()
      const reply = yield* qmp.raw("query-name")
      assert.deepStrictEqual(reply, { return: {} })
      const failed = yield* qmp.raw("cont", { nonsense: 1 })
      assert.deepStrictEqual(Object.keys(failed), ["error"])
    }))
})

describe("Qmp attaching to a QEMU started elsewhere", () => {
  it.scopedLive("connects over TCP to a QEMU listening with -qmp tcp:...,server=on", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          const probe = Net.createServer().listen(0, "127.0.0.1", () => {
            const { port } = probe.address() as Net.AddressInfo
            probe.close(() => resolve(port))
          })
        })
      )
      yield* rawQemu(["-qmp", `tcp:127.0.0.1:${port},server=on,wait=off`])
      const qmp = yield* Qmp.make({ _tag: "Tcp", host: "127.0.0.1", port }).pipe(
        Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.compose(Schedule.recurs(100))))
      )
      assert.strictEqual(qmp.address, `tcp:127.0.0.1:${port}`)
      assert.strictEqual((yield* qmp.execute("query-status")).status, "running")
    }))

  it.scopedLive("speaks QMP over an @effect/platform Socket", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("effect-qemu-sock-")
      const path = Path.join(dir, "qmp.sock")
      yield* rawQemu(["-qmp", `unix:${path},server=on,wait=off`])
      const qmp = yield* Effect.gen(function*() {
        const socket = yield* NodeSocket.makeNet({ path })
        return yield* Qmp.fromSocket(socket, { address: `unix:${path}` })
      }).pipe(Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.compose(Schedule.recurs(100)))))
      assert.strictEqual((yield* qmp.execute("query-status")).status, "running")
      const [, stop] = yield* qmp.executeAndWait("stop", { event: "STOP", timeout: "5 seconds" })
      assert.strictEqual(stop.event, "STOP")
      yield* qmp.execute("quit")
      const closed = yield* qmp.closed
      assert.strictEqual(closed._tag, "QmpDisconnected")
    }))

  it.scopedLive("the event stream narrows by name with isEvent", () =>
    Effect.gen(function*() {
      const { qmp } = yield* connectRaw()
      const subscription = yield* qmp.subscribe
      const fiber = yield* subscription.stream.pipe(
        Stream.filter(QmpMessage.isEvent("RESUME")),
        Stream.take(1),
        Stream.runCollect,
        Effect.fork
      )
      yield* qmp.execute("stop")
      yield* qmp.execute("cont")
      const [resume] = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      assert.strictEqual(resume.event, "RESUME")
    }))
})

describe("Qmp against a fake peer", () => {
  const connect = (path: string, options: Qmp.QmpOptions = {}) => Qmp.make({ _tag: "Unix", path }, options)

  it.scopedLive("a greeting that never comes fails with GreetingTimeout", () =>
    Effect.gen(function*() {
      const path = yield* fakePeer({ greet: false })
      const error = yield* Effect.flip(connect(path, { greetingTimeout: "200 millis" }))
      assert.strictEqual(error.reason, "GreetingTimeout")
      assert.include(error.message, "unix:")
    }))

  it.scopedLive("a greeting of the wrong shape fails with BadGreeting", () =>
    Effect.gen(function*() {
      const path = yield* fakePeer({ greet: false, onConnect: (peer) => peer.send({ QMP: { version: "seven" } }) })
      const error = yield* Effect.flip(connect(path))
      assert.strictEqual(error.reason, "BadGreeting")
    }))

  it.scopedLive("something other than a greeting first fails with BadGreeting", () =>
    Effect.gen(function*() {
      const path = yield* fakePeer({ greet: false, onConnect: (peer) => peer.send({ hello: "world" }) })
      const error = yield* Effect.flip(connect(path))
      assert.strictEqual(error.reason, "BadGreeting")
    }))

  it.scopedLive("an unreachable socket path fails with Open", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(connect("/nonexistent/qmp.sock"))
      assert.strictEqual(error.reason, "Open")
    }))

  const hostile = (
    name: string,
    respond: (request: { execute?: string; id?: unknown }, peer: any) => void,
    reason: string
  ) =>
    it.scopedLive(`${name} fails the pending call with a ${reason} protocol error and closes`, () =>
      Effect.gen(function*() {
        const path = yield* fakePeer({
          strict: true,
          onRequest: (request, peer) =>
            request.execute === "qmp_capabilities" ? answerDefault(request, peer) : respond(request, peer)
        })
        const qmp = yield* connect(path, { maxMessageBytes: 64 * 1024 })
        const error = yield* Effect.flip(qmp.execute("query-status", undefined, { timeout: "5 seconds" }))
        assert.strictEqual(error._tag, "QmpProtocolError")
        assert.strictEqual((error as { reason: string }).reason, reason)
        const closed = yield* qmp.closed
        assert.strictEqual(closed._tag, "QmpProtocolError")
        const after = yield* Effect.flip(qmp.execute("query-status"))
        assert.strictEqual(after._tag, "QmpProtocolError")
      }))

  hostile("invalid JSON", (_, peer) => peer.sendRaw("{\"return\": {,}\r\n"), "InvalidJson")
  hostile("a message over the size bound", (_, peer) => peer.sendRaw("\"" + "x".repeat(200_000)), "MessageTooLong")
  hostile("JSON that is no QMP message", (_, peer) => peer.send({ hello: 1 }), "NotQmp")
  hostile("a bare JSON array", (_, peer) => peer.send([1, 2, 3]), "NotQmp")
  hostile("a second greeting", (_, peer) => peer.send({ QMP: { version: {}, capabilities: [] } }), "UnexpectedGreeting")

  it.scopedLive("a stalled reply times out, the late reply is dropped and the next call gets its own", () =>
    Effect.gen(function*() {
      let stalled: { id?: unknown } | undefined
      const path = yield* fakePeer({
        strict: true,
        onRequest: (request, peer) => {
          if (request.execute === "slow") {
            stalled = request
            return
          }
          if (stalled !== undefined) {
            peer.send({ return: { late: true }, id: stalled.id })
            stalled = undefined
          }
          answerDefault(request, peer)
        }
      })
      const qmp = yield* connect(path)
      const error = yield* Effect.flip(qmp.execute(untyped("slow"), undefined, { timeout: "100 millis" }))
      assert.strictEqual(error._tag, "QmpTimeout")
      assert.deepStrictEqual(yield* qmp.execute(untyped("fast")), { echo: "fast" })
      assert.isTrue(yield* qmp.isOpen)
    }))

  it.scopedLive("decodeReplies fails a reply of the wrong shape with QmpReplyError and stays open", () =>
    Effect.gen(function*() {
      const path = yield* fakePeer({
        strict: true,
        onRequest: (request, peer) =>
          request.execute === "query-status"
            ? peer.send({ return: { status: 42 }, id: request.id })
            : answerDefault(request, peer)
      })
      const qmp = yield* connect(path, { decodeReplies: true })
      const error = yield* Effect.flip(qmp.execute("query-status"))
      assert.strictEqual(error._tag, "QmpReplyError")
      assert.isTrue(yield* qmp.isOpen)
    }))

  it.scopedLive("a disconnect mid-call fails the call with QmpDisconnected", () =>
    Effect.gen(function*() {
      const path = yield* fakePeer({
        strict: true,
        onRequest: (request, peer) =>
          request.execute === "qmp_capabilities" ? answerDefault(request, peer) : peer.socket.destroy()
      })
      const qmp = yield* connect(path)
      const error = yield* Effect.flip(qmp.execute("query-status", undefined, { timeout: "5 seconds" }))
      assert.strictEqual(error._tag, "QmpDisconnected")
      assert.include(error.message, "query-status")
    }))

  it.scopedLive("bytes that keep coming after a protocol error are ignored", () =>
    Effect.gen(function*() {
      const path = yield* fakePeer({
        strict: true,
        onRequest: (request, peer) => {
          if (request.execute === "qmp_capabilities") return answerDefault(request, peer)
          peer.sendRaw("not json\r\n")
          for (let i = 0; i < 100; i++) peer.sendRaw(`{"return": {}, "id": ${i}}\r\n\u0000\u0001garbage`)
        }
      })
      const qmp = yield* connect(path)
      const error = yield* Effect.flip(qmp.execute("query-status", undefined, { timeout: "5 seconds" }))
      assert.strictEqual(error._tag === "QmpProtocolError" && error.reason, "InvalidJson")
      const closed = yield* qmp.closed
      assert.strictEqual(closed._tag === "QmpProtocolError" && closed.reason, "InvalidJson")
      assert.isFalse(yield* qmp.isOpen)
    }))

  it.scopedLive("a half message then close ends the session with QmpDisconnected", () =>
    Effect.gen(function*() {
      const path = yield* fakePeer({
        strict: true,
        onRequest: (request, peer) => {
          if (request.execute === "qmp_capabilities") return answerDefault(request, peer)
          peer.sendRaw("{\"return\": {\"sta")
          peer.socket.end()
        }
      })
      const qmp = yield* connect(path)
      const error = yield* Effect.flip(qmp.execute("query-status", undefined, { timeout: "5 seconds" }))
      assert.strictEqual(error._tag, "QmpDisconnected")
    }))

  it.scopedLive("an event flood keeps the mailbox and each subscriber bounded", () =>
    Effect.gen(function*() {
      const total = 50_000
      const path = yield* fakePeer({
        strict: true,
        onRequest: (request, peer) => {
          if (request.execute === "flood") {
            let text = ""
            for (let i = 0; i < total; i++) {
              text += JSON.stringify({ event: "TICK", data: { i }, timestamp: { seconds: 1, microseconds: i } }) +
                "\r\n"
            }
            peer.sendRaw(text)
          }
          answerDefault(request, peer)
        }
      })
      const qmp = yield* connect(path, { eventBufferSize: 100 })
      const subscription = yield* qmp.subscribe
      yield* qmp.execute(untyped("flood"))
      // The reply follows the flood on the wire, so every event has been delivered by now.
      const mailbox = yield* qmp.takeEvents
      assert.strictEqual(mailbox.length, 100)
      assert.deepStrictEqual(mailbox[99].data, { i: total - 1 })
      assert.deepStrictEqual(mailbox[0].data, { i: total - 100 })
      const first = yield* subscription.take
      assert.isAtLeast((first.data as { i: number }).i, total - 101)
      assert.deepStrictEqual(yield* qmp.takeEvents, [])
    }))

  it.scopedLive("waitEvent fails with QmpTimeout within its bound", () =>
    Effect.gen(function*() {
      const path = yield* fakePeer({ strict: true })
      const qmp = yield* connect(path)
      const started = Date.now()
      const error = yield* Effect.flip(qmp.waitEvent(untyped("NEVER"), { timeout: "150 millis" }))
      assert.strictEqual(error._tag, "QmpTimeout")
      assert.isTrue(Duration.toMillis((error as { timeout: Duration.Duration }).timeout) === 150)
      assert.isBelow(Date.now() - started, 2000)
    }))
})
