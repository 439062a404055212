/**
 * Test kit: a fake QMP peer on a UNIX socket, for what real QEMU cannot be made to do
 * (malformed JSON, stalled replies, foreign ids, floods). It rejects nothing on its own: each
 * test scripts what the peer says.
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"

export const greetingLine = JSON.stringify({
  QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 }, package: "fake" }, capabilities: ["oob"] }
}) + "\r\n"

export interface PeerContext {
  readonly socket: Net.Socket
  /** Sends a JSON value followed by CRLF. */
  readonly send: (value: unknown) => void
  /** Sends raw text or bytes. */
  readonly sendRaw: (data: string | Uint8Array) => void
}

export interface PeerScript {
  /** Sends the standard greeting on connect. Default: true. */
  readonly greet?: boolean
  /** Called once on connect, after the greeting. */
  readonly onConnect?: (peer: PeerContext) => void
  /**
   * Called for each request line. Default: answers `qmp_capabilities` with `{}` and every other
   * command with `{"return": {"echo": <command>}}`.
   */
  readonly onRequest?: (request: { execute?: string; arguments?: any; id?: unknown }, peer: PeerContext) => void
}

export const answerDefault = (request: { execute?: string; id?: unknown }, peer: PeerContext) => {
  if (request.execute === "qmp_capabilities") peer.send({ return: {}, id: request.id })
  else peer.send({ return: { echo: request.execute }, id: request.id })
}

/** Starts a scripted peer; yields the socket path. Everything is removed when the scope closes. */
export const fakePeer = (script: PeerScript) =>
  Effect.acquireRelease(
    Effect.async<{ path: string; server: Net.Server; dir: string; sockets: Set<Net.Socket> }>((resume) => {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-qemu-peer-"))
      const path = Path.join(dir, "qmp.sock")
      const sockets = new Set<Net.Socket>()
      const server = Net.createServer((socket) => {
        sockets.add(socket)
        socket.on("close", () => sockets.delete(socket))
        socket.on("error", () => {})
        const peer: PeerContext = {
          socket,
          send: (value) => {
            if (!socket.destroyed) socket.write(JSON.stringify(value) + "\r\n")
          },
          sendRaw: (data) => {
            if (!socket.destroyed) socket.write(data)
          }
        }
        if (script.greet !== false) peer.sendRaw(greetingLine)
        script.onConnect?.(peer)
        let buffered = ""
        socket.on("data", (chunk) => {
          buffered += chunk.toString("utf8")
          let newline: number
          while ((newline = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, newline).trim()
            buffered = buffered.slice(newline + 1)
            if (line.length === 0) continue
            const request = JSON.parse(line)
            ;(script.onRequest ?? answerDefault)(request, peer)
          }
        })
      })
      server.listen(path, () => resume(Effect.succeed({ path, server, dir, sockets })))
    }),
    ({ dir, server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => {
          Fs.rmSync(dir, { recursive: true, force: true })
          resume(Effect.void)
        })
      })
  ).pipe(Effect.map(({ path }) => path))
