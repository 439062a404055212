/**
 * One try at a forwarded port: does a server in the guest accept a connection on it?
 *
 * QEMU's user networking accepts the host side of every connection at once and only then connects
 * to the guest, so the host sees an open connection whether or not anything listens in the guest.
 * What tells is QEMU's own view of the connection in `info usernet`: `SYN_SENT` until the guest
 * answers, then `ESTABLISHED` (or a later state); a guest that refuses makes QEMU close the host
 * side. A server that accepts and closes at once, without a word, may close before QEMU is asked:
 * that try counts as refused, and the next one tells.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Net from "node:net"
import type { QmpClient } from "../Qmp.js"
import { connectionsTo, isAccepted, netdevId, parseUsernet } from "./usernet.js"

/** How long one try watches its connection, and how often it asks QEMU meanwhile. */
const windowMillis = 1000
const pollMillis = 50

type SocketState = "connecting" | "open" | "answered" | "closed" | "refused"

/** A connection to 127.0.0.1:port whose state is kept up to date; destroyed with the scope. */
const connect = (port: number) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const watch = { state: "connecting" as SocketState }
      const socket = Net.connect({ host: "127.0.0.1", port })
      socket.on("connect", () => {
        if (watch.state === "connecting") watch.state = "open"
      })
      // data comes only from a guest that accepted the connection; QEMU closes the host side
      // (cleanly or not) both when the guest refused it and when the guest accepted and closed it
      socket.on("data", () => {
        watch.state = "answered"
      })
      socket.on("end", () => {
        if (watch.state !== "answered") watch.state = "closed"
      })
      socket.on("error", (error: NodeJS.ErrnoException) => {
        if (watch.state !== "answered") watch.state = error.code === "ECONNREFUSED" ? "refused" : "closed"
      })
      return { socket, watch }
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  )

const connections = (qmp: QmpClient, guestPort: number) =>
  qmp.hmp("info usernet").pipe(
    Effect.map((text) => connectionsTo(parseUsernet(text, netdevId), guestPort)),
    Effect.mapError((error) => `info usernet failed: ${error.message}`)
  )

/**
 * Connects to `hostPort` and watches until the guest accepts (`"accepted"`), refuses, or does not
 * answer within a second (a sentence saying which). Fails, for good, when QEMU cannot be asked.
 */
export const probePort = (
  qmp: QmpClient,
  guestPort: number,
  hostPort: number
): Effect.Effect<"accepted" | string, string> =>
  Effect.scoped(Effect.gen(function*() {
    // connections accepted before this try are someone else's, or over
    const before = yield* connections(qmp, guestPort)
    const { watch } = yield* connect(hostPort)
    const end = Date.now() + windowMillis
    while (true) {
      const state = watch.state
      if (state === "answered") return "accepted"
      if (state === "refused") return `nothing listens on 127.0.0.1:${hostPort}: QEMU's forward is gone`
      const now = yield* connections(qmp, guestPort)
      for (const [fd, connection] of now) {
        if (isAccepted(connection) && !isAccepted(before.get(fd) ?? "")) return "accepted"
      }
      if (state === "closed") return `the guest refused a connection to port ${guestPort} (nothing listening)`
      if (Date.now() >= end) {
        return `the guest did not answer a connection to port ${guestPort} within 1s (is its network up?)`
      }
      yield* Effect.sleep(pollMillis)
    }
  }))
