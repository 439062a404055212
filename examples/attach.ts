/**
 * Attaching to a QEMU started elsewhere: here QEMU is started by hand with
 * `-qmp unix:PATH,server=on,wait=off`, as libvirt or a shell script would, and the QMP client
 * connects to its socket.
 *
 *   npx tsx examples/attach.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console as Stdout, Effect, Schedule } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Qmp } from "../src/index.js"

const startedElsewhere = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-qemu-attach-"))
    const path = Path.join(dir, "qmp.sock")
    const child = spawn("qemu-system-x86_64", [
      "-M",
      "none",
      "-nodefaults",
      "-display",
      "none",
      "-qmp",
      `unix:${path},server=on,wait=off`
    ], { stdio: "ignore" })
    return { child, dir, path }
  }),
  ({ child, dir }) =>
    Effect.sync(() => {
      child.kill("SIGKILL")
      Fs.rmSync(dir, { recursive: true, force: true })
    })
)

const program = Effect.gen(function*() {
  const { path } = yield* startedElsewhere
  // The socket appears once QEMU is up: retry the connection briefly.
  const qmp = yield* Qmp.make({ _tag: "Unix", path }).pipe(
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.compose(Schedule.recurs(100))))
  )
  yield* Stdout.log(`attached to QEMU ${qmp.version} at ${qmp.address}`)
  const status = yield* qmp.execute("query-status")
  yield* Stdout.log(`status: ${status.status}`)
  const [, stop] = yield* qmp.executeAndWait("stop", { event: "STOP" })
  yield* Stdout.log(`event: ${stop.event}`)
  yield* qmp.execute("quit")
  yield* Stdout.log(`closed: ${(yield* qmp.closed).message}`)
})

NodeRuntime.runMain(Effect.scoped(program))
