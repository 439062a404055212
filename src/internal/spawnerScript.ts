/**
 * The spawner: a small Node program that starts QEMUs for the controller and hands their sockets
 * back over its IPC channel, so that the controller's event loop never waits for a fork and an
 * exec (`child_process.spawn` blocks until the child has exec'd, and forking a large controller
 * is slow). Kept in the code and run with `node -e`, so that it needs no file beside the library
 * and survives bundling.
 *
 * Messages in: `{ type: "spawn", id, argv, logPath, pipes, env, cwd }` (`env` only when it
 * changed since the last spawn: the helper starts with the controller's). Out: `{ type: "ready" }`
 * once; per spawn `{ type: "spawned", id, pid }` then one `{ type: "fd", id, index }` per pipe,
 * the socket attached; `{ type: "failed", id, detail }` instead when it could not start; and
 * `{ type: "exit", id, code, signal }` when QEMU exits. When the controller goes away (its end
 * of the channel closes, however it died) every QEMU still running is SIGKILLed, then the spawner
 * exits.
 *
 * @internal
 */
export const spawnerScript = String.raw`"use strict"
const { spawn } = require("node:child_process")
const fs = require("node:fs")
const children = new Map()
let env = process.env
// A controller gone meanwhile (EPIPE) is the disconnect handler's business: with a callback, a
// failed send is reported to it instead of being thrown as an unhandled error event.
const send = (message, handle) => {
  if (process.connected) process.send(message, handle, undefined, () => {})
}
const killAll = () => {
  for (const child of children.values()) {
    try { process.kill(-child.pid, "SIGKILL") } catch { try { child.kill("SIGKILL") } catch {} }
  }
}
process.on("disconnect", () => {
  killAll()
  process.exit(0)
})
const start = (request) => {
  const { id, argv, logPath, pipes } = request
  if (request.env) env = request.env
  let logFd
  try {
    logFd = fs.openSync(logPath, "w", 0o600)
  } catch (error) {
    return send({ type: "failed", id, detail: "cannot create the log file " + logPath + ": " + error.message })
  }
  let child
  try {
    child = spawn(argv[0], argv.slice(1), {
      stdio: ["ignore", logFd, logFd, ...Array.from({ length: pipes }, () => "pipe")],
      env,
      cwd: request.cwd,
      detached: true
    })
  } catch (error) {
    return send({ type: "failed", id, detail: String(error && error.message || error) })
  } finally {
    fs.closeSync(logFd)
  }
  if (child.pid === undefined) {
    return child.once("error", (error) => send({ type: "failed", id, detail: error.message }))
  }
  child.on("error", () => {})
  children.set(id, child)
  const sockets = child.stdio.slice(3)
  // Stop reading before the first turn of this loop: a byte read here (QEMU's greeting) would
  // be lost when the socket is handed over.
  for (const socket of sockets) {
    socket.pause()
    socket._handle.readStop()
  }
  child.once("exit", (code, signal) => {
    children.delete(id)
    send({ type: "exit", id, code, signal })
  })
  send({ type: "spawned", id, pid: child.pid })
  sockets.forEach((socket, index) => send({ type: "fd", id, index }, socket))
}
process.on("message", (message) => {
  if (message && message.type === "spawn") start(message)
})
send({ type: "ready" })
`
