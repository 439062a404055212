/**
 * The fake console peer (not QEMU): listens on a UNIX socket, and to the first client writes
 * `bytes` bytes as fast as the socket accepts them, then closes and exits.
 *
 * Usage: node --import tsx bench/console-peer.ts SOCKET_PATH BYTES
 * Prints "ready" on stdout once listening.
 */
import { createServer } from "node:net"

const [socketPath, bytesArg] = process.argv.slice(2)
const total = Number(bytesArg)
const chunk = Buffer.alloc(1024 * 1024, "x")

const server = createServer((socket) => {
  server.close()
  socket.on("error", (error) => {
    process.stderr.write(`console-peer: ${error.message}\n`)
    process.exit(1)
  })
  let sent = 0
  const pump = () => {
    while (sent < total) {
      const size = Math.min(chunk.length, total - sent)
      sent += size
      if (!socket.write(size === chunk.length ? chunk : chunk.subarray(0, size))) {
        socket.once("drain", pump)
        return
      }
    }
    socket.end()
  }
  pump()
})
server.listen(socketPath, () => process.stdout.write("ready\n"))
