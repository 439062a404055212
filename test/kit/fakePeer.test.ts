import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Qmp from "../../src/Qmp.js"
import { untyped } from "../../src/QmpCommands.js"
import { fakePeer, lineSplitter, type PeerRequest } from "./fakePeer.js"
import { rawQemu } from "./qemu.js"

// A conversation line by line: one request out, the next message that is no event back.
const conversation = (socket: Net.Socket) =>
  Effect.gen(function*() {
    const messages = yield* Queue.unbounded<unknown>()
    socket.on(
      "data",
      lineSplitter((line) => {
        const message = JSON.parse(line)
        if (!("event" in message)) Queue.unsafeOffer(messages, message)
      })
    )
    socket.on("error", () => {})
    const next = Queue.take(messages).pipe(
      Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("no message within 10 seconds") })
    )
    const greeting = yield* next
    const ask = (line: string) => Effect.sync(() => socket.write(line + "\n")).pipe(Effect.zipRight(next))
    return { greeting, ask }
  })

const connectTo = (path: string): Effect.Effect<Net.Socket, Error, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<Net.Socket, Error>((resume) => {
      const socket = Net.createConnection(path)
      socket.once("connect", () => resume(Effect.succeed(socket)))
      socket.once("error", (error) => resume(Effect.fail(error)))
    }),
    (socket) => Effect.sync(() => socket.destroy())
  )

const askAll = (socket: Net.Socket, lines: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const { ask } = yield* conversation(socket)
    const replies: Array<unknown> = []
    for (const line of lines) replies.push(yield* ask(line))
    return replies
  })

// Everything QEMU's monitor refuses around the capabilities negotiation, then the negotiation
// itself and a second one.
const negotiation = [
  `[1]`,
  `{"foo": 1}`,
  `{"execute": 1, "id": 1}`,
  `{"execute": "query-version", "arguments": [], "id": 2}`,
  `{"id": 3}`,
  `{"execute": "query-status", "id": "before"}`,
  `{"exec-oob": "query-version", "id": 4}`,
  `{"execute": "query-status", "exec-oob": "query-version", "id": 5}`,
  `{"execute": "qmp_capabilities", "arguments": {"enable": [1]}, "id": 6}`,
  `{"execute": "qmp_capabilities", "arguments": {"enable": null}, "id": 7}`,
  `{"execute": "qmp_capabilities", "arguments": {"enable": ["foo"]}, "id": 8}`,
  `{"execute": "qmp_capabilities", "arguments": {"bogus": 1}, "id": 9}`,
  `{"execute": "qmp_capabilities", "id": {"nested": [1]}}`,
  `{"execute": "qmp_capabilities", "id": 10}`,
  `{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}, "id": 11}`
]

describe("the fake QMP peer", () => {
  it.scopedLive("strict: refuses what QEMU 7.2 refuses, with QEMU's own replies, request for request", () =>
    Effect.gen(function*() {
      const qemu = yield* rawQemu()
      const fromQemu = yield* askAll(qemu.monitor, negotiation)
      const path = yield* fakePeer({ strict: true })
      const fromPeer = yield* askAll(yield* connectTo(path), negotiation)
      assert.deepStrictEqual(fromPeer, fromQemu)
      // What the comparison covers, spelled out.
      assert.deepStrictEqual(fromPeer[5], {
        id: "before",
        error: { class: "CommandNotFound", desc: "Expecting capabilities negotiation with 'qmp_capabilities'" }
      })
      assert.deepStrictEqual(fromPeer[10], {
        id: 8,
        error: { class: "GenericError", desc: "Parameter 'null' does not accept value 'foo'" }
      })
      assert.deepStrictEqual(fromPeer[12], { return: {}, id: { nested: [1] } })
      assert.deepStrictEqual(fromPeer[13], {
        id: 10,
        error: { class: "CommandNotFound", desc: "Capabilities negotiation is already complete, command ignored" }
      })
    }))

  it.scopedLive("strict: the script sees only what QEMU would run, and the QMP client gets through", () =>
    Effect.gen(function*() {
      const seen: Array<PeerRequest> = []
      const path = yield* fakePeer({
        strict: true,
        onRequest: (request, peer) => {
          seen.push(request)
          peer.send({ return: {}, id: request.id })
        }
      })
      const { ask } = yield* conversation(yield* connectTo(path))
      yield* ask(`{"execute": "stop", "id": 1}`)
      yield* ask(`{"execute": "qmp_capabilities", "arguments": {"enable": ["foo"]}, "id": 2}`)
      yield* ask(`{"execute": "qmp_capabilities", "id": 3}`)
      yield* ask(`{"execute": "qmp_capabilities", "id": 4}`)
      yield* ask(`{"execute": "stop", "id": 5}`)
      assert.deepStrictEqual(seen, [{ execute: "qmp_capabilities", id: 3 }, { execute: "stop", id: 5 }])

      const qmp = yield* Qmp.make({ _tag: "Unix", path }, { checkCommands: false })
      assert.deepStrictEqual(yield* qmp.execute(untyped("x-anything")), {})
      assert.deepStrictEqual(seen.slice(2).map((request) => request.execute), ["qmp_capabilities", "x-anything"])
    }))

  it.scopedLive("not strict: every request goes to the script, a command before qmp_capabilities too", () =>
    Effect.gen(function*() {
      const path = yield* fakePeer({})
      const { ask } = yield* conversation(yield* connectTo(path))
      assert.deepStrictEqual(yield* ask(`{"execute": "query-status", "id": 1}`), {
        return: { echo: "query-status" },
        id: 1
      })
      assert.deepStrictEqual(yield* ask(`{"execute": "qmp_capabilities", "id": 2}`), { return: {}, id: 2 })
      assert.deepStrictEqual(yield* ask(`{"execute": "qmp_capabilities", "id": 3}`), { return: {}, id: 3 })
    }))

  it.scopedLive("on release it cuts open connections and removes its socket and directory", () =>
    Effect.gen(function*() {
      const { closed, path } = yield* Effect.scoped(Effect.gen(function*() {
        const path = yield* fakePeer({})
        const client = Net.createConnection(path)
        client.on("error", () => {})
        yield* Effect.async<void>((resume) => {
          client.once("data", () => resume(Effect.void))
        })
        const closed = Effect.async<void>((resume) => {
          if (client.closed) resume(Effect.void)
          else client.once("close", () => resume(Effect.void))
        })
        return { closed, path }
      }))
      yield* closed.pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("still open") }))
      assert.isFalse(Fs.existsSync(path))
      assert.isFalse(Fs.existsSync(Path.dirname(path)))
    }))
})
