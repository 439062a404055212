/**
 * The guest agent client against a scripted peer, for what a real qemu-ga cannot be made to send:
 * garbage before the sentinel, replies with foreign ids, replies of the wrong shape, lines that are
 * no JSON.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import * as Path from "node:path"
import * as GuestAgent from "../src/GuestAgent.js"
import { tempDir } from "./kit/qemu.js"

interface Request {
  readonly execute: string
  readonly arguments?: { readonly id?: number }
  readonly id: string
}

type Script = (request: Request, socket: Net.Socket) => void

/** A peer on a UNIX socket that runs `script` for each request line (a leading 0xFF dropped). */
const peer = (script: Script) =>
  Effect.gen(function*() {
    const directory = yield* tempDir("effect-qemu-agent-peer-")
    const path = Path.join(directory, "agent.sock")
    const server = Net.createServer((socket) => {
      let buffered = Buffer.alloc(0)
      socket.on("error", () => {})
      socket.on("data", (chunk) => {
        buffered = Buffer.from(Buffer.concat([buffered, chunk]).filter((byte) => byte !== 0xff))
        for (let newline = buffered.indexOf(10); newline >= 0; newline = buffered.indexOf(10)) {
          const line = buffered.subarray(0, newline).toString("utf8")
          buffered = buffered.subarray(newline + 1)
          script(JSON.parse(line) as Request, socket)
        }
      })
    })
    yield* Effect.acquireRelease(
      Effect.async<void>((resume) => void server.listen(path, () => resume(Effect.void))),
      () => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
    )
    const socket = yield* Effect.acquireRelease(
      Effect.sync(() => Net.connect(path)),
      (socket) => Effect.sync(() => socket.destroy())
    )
    return yield* GuestAgent.make({ socket, name: "peer" })
  })

const line = (value: unknown) => `${JSON.stringify(value)}\n`

/** Answers the sync after stale data and a foreign reply; `other` answers everything else. */
const syncing = (other: Script): Script => (request, socket) => {
  if (request.execute !== "guest-sync-delimited") return other(request, socket)
  socket.write("stale half a reply {\"return\": 1")
  socket.write(line({ return: {}, id: "foreign" }))
  socket.write(
    Buffer.concat([Buffer.from([0xff]), Buffer.from(line({ return: request.arguments?.id, id: request.id }))])
  )
}

describe("GuestAgent against a scripted peer", () => {
  it.scopedLive("drops what comes before the sentinel, replies with other ids, and errors without an id", () =>
    Effect.gen(function*() {
      const agent = yield* peer(syncing((request, socket) => {
        socket.write(line({ error: { class: "GenericError", desc: "JSON parse error" } }))
        socket.write(line({ return: "not mine", id: "ea0" }))
        socket.write(line({ return: { "host-name": "peer-host" }, id: request.id }))
      }))
      assert.strictEqual(yield* agent.hostName({ timeout: "5 seconds" }), "peer-host")
    }))

  it.scopedLive("a reply of the wrong shape is GuestAgentProtocolError; a line that is no JSON breaks nothing", () =>
    Effect.gen(function*() {
      let calls = 0
      const agent = yield* peer(syncing((request, socket) => {
        calls++
        if (calls === 1) {
          socket.write(line({ return: 42, id: request.id }))
        } else {
          socket.write("{ not json at all\n")
          socket.write(line({ return: {}, id: request.id }))
        }
      }))
      const error = yield* Effect.flip(agent.hostName({ timeout: "5 seconds" }))
      assert.strictEqual(error._tag, "GuestAgentProtocolError")
      assert.include(error.message, "guest-get-host-name")
      yield* agent.ping({ timeout: "5 seconds" })
    }))

  it.scopedLive("the channel closing fails the command with GuestAgentUnavailable at once", () =>
    Effect.gen(function*() {
      const agent = yield* peer(syncing((_, socket) => socket.destroy()))
      const started = Date.now()
      const error = yield* Effect.flip(agent.ping({ timeout: "20 seconds" }))
      assert.strictEqual(error._tag, "GuestAgentUnavailable")
      assert.include(error.message, "channel closed")
      assert.isBelow(Date.now() - started, 10_000)
    }))

  it.scopedLive("an error reply carries the agent's class and description", () =>
    Effect.gen(function*() {
      const agent = yield* peer(syncing((request, socket) => {
        socket.write(line({ error: { class: "CommandNotFound", desc: "no such \u001b[31mcommand" }, id: request.id }))
      }))
      const error = yield* Effect.flip(agent.execute("guest-nothing", undefined, { timeout: "5 seconds" }))
      assert.deepInclude(error, { _tag: "GuestAgentReplyError", errorClass: "CommandNotFound" })
      assert.strictEqual(
        error.message,
        "guest-nothing failed in the guest agent of \"peer\": no such \\u001b[31mcommand (CommandNotFound)"
      )
    }))
})
