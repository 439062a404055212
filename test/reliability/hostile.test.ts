/**
 * Hostile and broken QMP peers (what real QEMU cannot be made to do): every one must end in a
 * typed error within a time bound, with bounded memory and no descriptor left open. The single
 * cases live in test/Qmp.test.ts; here they run fragmented at seeded random points, at 100 MiB,
 * and for seconds on end.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Net from "node:net"
import * as Qmp from "../../src/Qmp.js"
import { untyped } from "../../src/QmpCommands.js"
import { answerDefault, fakePeer, greetingLine, type PeerContext } from "../kit/fakePeer.js"
import {
  announceSeed,
  expectNoFdLeak,
  iterations,
  MiB,
  openFds,
  type Random,
  random,
  retainedBytes,
  rssBytes
} from "./kit.js"

announceSeed("hostile")

const connect = (path: string, options: Qmp.QmpOptions = {}) => Qmp.make({ _tag: "Unix", path }, options)

/** Writes `chunk` and resolves once the socket takes more (backpressure), or false once it is gone. */
const writeWithBackpressure = (socket: Net.Socket, chunk: Uint8Array | string): Promise<boolean> =>
  new Promise((resolve) => {
    if (socket.destroyed || !socket.writable) return resolve(false)
    if (socket.write(chunk)) return setImmediate(() => resolve(!socket.destroyed))
    const done = (ok: boolean) => {
      socket.off("drain", onDrain)
      socket.off("close", onClose)
      resolve(ok)
    }
    const onDrain = () => done(true)
    const onClose = () => done(false)
    socket.once("drain", onDrain)
    socket.once("close", onClose)
  })

/** Sends `data` cut at random points, one piece per turn of the event loop, then maybe closes. */
const sendFragmented = (peer: PeerContext, data: Uint8Array, rng: Random, close: boolean) => {
  const cuts = new Set<number>()
  const pieces = 1 + rng.int(6)
  for (let i = 0; i < pieces; i++) cuts.add(rng.int(data.length))
  const ordered = [...cuts, data.length].sort((a, b) => a - b)
  let at = 0
  const next = (index: number) => {
    if (index === ordered.length) {
      if (close) peer.socket.end()
      return
    }
    peer.sendRaw(data.subarray(at, ordered[index]))
    at = ordered[index]
    setImmediate(() => next(index + 1))
  }
  next(0)
}

const text = (value: string) => new TextEncoder().encode(value)

const garbage = (rng: Random, length: number) => {
  const bytes = new Uint8Array(length)
  for (let i = 0; i < length; i++) bytes[i] = rng.int(256)
  return bytes
}

interface Scenario {
  readonly name: string
  /** Instead of the greeting (the session never opens), or as the reply to the first command. */
  readonly at: "greeting" | "reply"
  readonly bytes: (rng: Random, request: { id?: unknown }) => Uint8Array
  readonly close: boolean
}

const scenarios: ReadonlyArray<Scenario> = [
  { name: "invalid JSON", at: "reply", bytes: () => text("{\"return\": {,}\r\n"), close: false },
  { name: "invalid JSON greeting", at: "greeting", bytes: () => text("{\"QMP\": \r\n"), close: false },
  { name: "binary garbage", at: "reply", bytes: (rng) => garbage(rng, 1 + rng.int(4096)), close: true },
  { name: "binary garbage greeting", at: "greeting", bytes: (rng) => garbage(rng, 1 + rng.int(4096)), close: true },
  {
    name: "a greeting of the wrong shape",
    at: "greeting",
    bytes: () => text(JSON.stringify({ QMP: { version: "7.2", capabilities: "all" } }) + "\r\n"),
    close: false
  },
  {
    // Dropped (QMP's spec), so the close after it is what ends the session.
    name: "a reply with a foreign id, then close",
    at: "reply",
    bytes: () => text("{\"return\": {}, \"id\": 424242}\r\n"),
    close: true
  },
  {
    name: "a message nested 100,000 deep",
    at: "reply",
    bytes: () => text("[".repeat(100_000) + "]".repeat(100_000) + "\r\n"),
    close: false
  },
  {
    name: "a greeting nested 100,000 deep",
    at: "greeting",
    bytes: () => text(`{"QMP": {"version": ${"[".repeat(100_000)}${"]".repeat(100_000)}}}\r\n`),
    close: false
  },
  {
    name: "a reply to the right id with a second greeting after it",
    at: "reply",
    bytes: (_, request) => text(JSON.stringify({ return: {}, id: request.id }) + "\r\n" + greetingLine),
    close: false
  },
  { name: "a half message then close", at: "reply", bytes: () => text("{\"return\": {\"stat"), close: true },
  { name: "a half greeting then close", at: "greeting", bytes: () => text(greetingLine.slice(0, 30)), close: true },
  { name: "nothing then close", at: "reply", bytes: () => new Uint8Array(0), close: true }
]

describe("Hostile QMP peers", () => {
  it.live(
    "each malformed input, cut at random points, ends in a typed error in time, without leaking",
    () =>
      Effect.scoped(Effect.gen(function*() {
        const rng = random("fragmented")
        const rounds = iterations(15)
        const fds = openFds()
        let slowest = 0
        for (let round = 0; round < rounds; round++) {
          for (const scenario of scenarios) {
            const exit = yield* Effect.scoped(Effect.gen(function*() {
              const path = yield* fakePeer({
                strict: true,
                greet: scenario.at !== "greeting",
                onConnect: (peer) => {
                  if (scenario.at === "greeting") sendFragmented(peer, scenario.bytes(rng, {}), rng, scenario.close)
                },
                onRequest: (request, peer) =>
                  request.execute === "qmp_capabilities"
                    ? answerDefault(request, peer)
                    : sendFragmented(peer, scenario.bytes(rng, request), rng, scenario.close)
              })
              const started = Date.now()
              const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
                const qmp = yield* connect(path, { greetingTimeout: "5 seconds" })
                yield* qmp.execute("query-status", undefined, { timeout: "5 seconds" })
                // A peer that answered well before going bad: the next call meets the failure.
                return yield* qmp.execute("query-status", undefined, { timeout: "5 seconds" })
              })))
              slowest = Math.max(slowest, Date.now() - started)
              return exit
            }))
            const label = `${scenario.name}, round ${round}`
            assert.isTrue(Exit.isFailure(exit), label)
            if (Exit.isFailure(exit)) {
              const error = Cause.failureOption(exit.cause)
              assert.isTrue(error._tag === "Some", `${label}: ${Cause.pretty(exit.cause)}`)
              if (error._tag === "Some") {
                const tag = error.value._tag
                const expected = scenario.at === "greeting"
                  ? ["QmpConnectError"]
                  : ["QmpProtocolError", "QmpDisconnected"]
                assert.include(expected, tag, `${label}: ${error.value.message}`)
                // Hostile bytes end up in error messages and logs: never as raw control characters,
                // which a terminal showing the log would obey.
                assert.notMatch(error.value.message, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, label)
              }
            }
          }
          yield* expectNoFdLeak(fds)
        }
        console.log(`fragmented hostile input: ${rounds * scenarios.length} sessions, slowest ${slowest} ms`)
        // Nothing above waits for a timeout: each failure is seen as soon as the bytes arrive.
        assert.isBelow(slowest, 2000)
      })),
    60_000
  )

  it.scopedLive("no greeting at all fails with GreetingTimeout at its bound, and leaks nothing", () =>
    Effect.gen(function*() {
      const fds = openFds()
      for (let i = 0; i < 5; i++) {
        const started = Date.now()
        const error = yield* Effect.scoped(Effect.gen(function*() {
          const path = yield* fakePeer({ greet: false })
          return yield* Effect.flip(connect(path, { greetingTimeout: "200 millis" }))
        }))
        const elapsed = Date.now() - started
        assert.strictEqual(error.reason, "GreetingTimeout")
        assert.isAtLeast(elapsed, 190)
        assert.isBelow(elapsed, 1500)
      }
      yield* expectNoFdLeak(fds)
    }))

  it.scopedLive("a 100 MiB line fails with MessageTooLong, in time, without being buffered", () =>
    Effect.gen(function*() {
      const line = 100 * MiB
      const chunk = Buffer.alloc(64 * 1024, "x".charCodeAt(0))
      let sent = 0
      const path = yield* fakePeer({
        strict: true,
        onRequest: (request, peer) => {
          if (request.execute === "qmp_capabilities") return answerDefault(request, peer)
          // Streamed with backpressure: the peer holds one chunk, so whatever memory grows is the client's.
          void (async () => {
            if (!(await writeWithBackpressure(peer.socket, "{\"return\": \""))) return
            while (sent < line) {
              if (!(await writeWithBackpressure(peer.socket, chunk))) return
              sent += chunk.length
            }
            await writeWithBackpressure(peer.socket, `", "id": ${request.id}}\r\n`)
          })()
        }
      })
      const qmp = yield* connect(path)
      const before = rssBytes()
      let peak = before
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssBytes())
      }, 10)
      const started = Date.now()
      const error = yield* Effect.flip(qmp.execute("query-status", undefined, { timeout: "60 seconds" })).pipe(
        Effect.ensuring(Effect.sync(() => clearInterval(sampler)))
      )
      const elapsed = Date.now() - started
      console.log(
        `100 MiB line: failed after ${elapsed} ms, ${(sent / MiB).toFixed(1)} MiB sent, RSS growth ${
          ((peak - before) / MiB).toFixed(1)
        } MiB`
      )
      assert.strictEqual(error._tag, "QmpProtocolError")
      assert.strictEqual((error as { reason: string }).reason, "MessageTooLong")
      assert.isBelow(elapsed, 10_000)
      // The default bound is 16 MiB: the client stops reading there and closes.
      assert.isBelow(sent, 40 * MiB)
      assert.isBelow(peak - before, 64 * MiB)
      assert.strictEqual((yield* qmp.closed)._tag, "QmpProtocolError")
    }))

  it.scopedLive("the same 100 MiB line under a small maxMessageBytes is refused after that many bytes", () =>
    Effect.gen(function*() {
      const chunk = Buffer.alloc(64 * 1024, "y".charCodeAt(0))
      let sent = 0
      const path = yield* fakePeer({
        strict: true,
        onRequest: (request, peer) => {
          if (request.execute === "qmp_capabilities") return answerDefault(request, peer)
          void (async () => {
            while (sent < 100 * MiB) {
              if (!(await writeWithBackpressure(peer.socket, chunk))) return
              sent += chunk.length
            }
          })()
        }
      })
      const qmp = yield* connect(path, { maxMessageBytes: 1024 * 1024 })
      const error = yield* Effect.flip(qmp.execute("query-status", undefined, { timeout: "10 seconds" }))
      assert.strictEqual((error as { reason: string }).reason, "MessageTooLong")
      assert.isBelow(sent, 8 * MiB)
    }))

  it.scopedLive("an endless event flood: mailbox and subscriber stay bounded, memory too, calls still answered", () =>
    Effect.gen(function*() {
      const eventBufferSize = 256
      let flooding = true
      let events = 0
      const path = yield* fakePeer({
        strict: true,
        onRequest: (request, peer) => {
          const first = request.execute === "qmp_capabilities"
          answerDefault(request, peer)
          if (!first) return
          void (async () => {
            while (flooding) {
              let batch = ""
              for (let i = 0; i < 200; i++) {
                batch += JSON.stringify({
                  event: "FLOOD",
                  data: { n: events++, pad: "p".repeat(64) },
                  timestamp: { seconds: 1, microseconds: 0 }
                }) + "\r\n"
              }
              if (!(await writeWithBackpressure(peer.socket, batch))) return
            }
          })()
        }
      })
      const qmp = yield* connect(path, { eventBufferSize })
      // A subscriber that never reads, and a waiter for an event that never comes.
      const subscription = yield* qmp.subscribe
      const never = yield* Effect.fork(qmp.waitEvent(untyped("NEVER"), { timeout: "30 seconds" }))
      yield* Effect.sleep("300 millis")
      const retainedBefore = retainedBytes()
      let slowest = 0
      let calls = 0
      const until = Date.now() + 4000
      while (Date.now() < until) {
        const started = Date.now()
        const reply: unknown = yield* qmp.raw("query-status", undefined, { timeout: "2 seconds" })
        assert.deepStrictEqual((reply as { return: unknown }).return, { echo: "query-status" })
        slowest = Math.max(slowest, Date.now() - started)
        calls++
        yield* Effect.sleep("50 millis")
      }
      const retainedGrowth = retainedBytes() - retainedBefore
      flooding = false
      // The reply to a call made now follows the last event on the wire: after it, all are in.
      yield* Effect.sleep("50 millis")
      yield* qmp.execute("query-status", undefined, { timeout: "2 seconds" })
      console.log(
        `event flood: ${events} events in 4 s, ${calls} calls, slowest ${slowest} ms, retained heap growth ${
          (retainedGrowth / MiB).toFixed(1)
        } MiB`
      )
      assert.isAbove(events, 50_000)
      assert.isBelow(slowest, 1000)
      assert.isBelow(retainedGrowth, 8 * MiB)
      const mailbox = yield* qmp.takeEvents
      assert.strictEqual(mailbox.length, eventBufferSize)
      assert.strictEqual((mailbox[eventBufferSize - 1].data as { n: number }).n, events - 1)
      // The subscriber that never read holds the newest eventBufferSize events, and no more.
      for (let i = 0; i < eventBufferSize; i++) {
        const event = yield* Effect.timeoutFail(subscription.take, {
          duration: "1 second",
          onTimeout: () => new Error(`subscriber held only ${i} events`)
        })
        if (i === 0) assert.strictEqual((event.data as { n: number }).n, events - eventBufferSize)
      }
      const more = yield* Effect.option(Effect.timeout(subscription.take, "100 millis"))
      assert.strictEqual(more._tag, "None")
      yield* qmp.close
      const waited = yield* Effect.flip(Fiber.join(never))
      assert.strictEqual(waited._tag, "QmpDisconnected")
    }))
})
