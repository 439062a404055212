/**
 * The demo: boots a tiny VM (a 512-byte boot sector the library writes itself), talks QMP to it,
 * reads and writes its serial console, and shuts it down gracefully.
 *
 *   npm run demo
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console as Stdout, Effect, Option } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Machine, TinyGuest } from "../src/index.js"

const workDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "effect-qemu-demo-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

const program = Effect.gen(function*() {
  const dir = yield* workDir
  const image = yield* TinyGuest.writeGuest(dir, TinyGuest.bannerEchoGuest("Hello from a 512-byte guest!"))

  const vm = yield* Machine.make({
    name: "demo",
    args: [...TinyGuest.floppyBootArgs(image)],
    console: { drain: true }
  })
  yield* Stdout.log(`launched QEMU ${vm.qmp.version} (pid ${vm.pid})`)
  yield* Stdout.log(`  command: ${vm.commandLine.join(" ")}`)

  const status = yield* vm.execute("query-status")
  yield* Stdout.log(`QMP query-status: ${status.status}, running=${status.running}`)

  const banner = yield* vm.console.waitFor(/Hello from .*!/, { timeout: "10 seconds" })
  yield* Stdout.log(`console said: "${banner[0]}"`)

  yield* vm.console.write("echo me")
  const echo = yield* vm.console.waitFor("echo me", { timeout: "10 seconds" })
  yield* Stdout.log(`console echoed: "${echo}"`)

  const [, stop] = yield* vm.executeAndWait("stop", { event: "STOP", timeout: "5 seconds" })
  yield* Stdout.log(`paused: event ${stop.event} at ${stop.timestamp.seconds}.${stop.timestamp.microseconds}`)
  const [, resume] = yield* vm.executeAndWait("cont", { event: "RESUME", timeout: "5 seconds" })
  yield* Stdout.log(`resumed: event ${resume.event}`)

  const cpus = yield* vm.execute("query-cpus-fast")
  yield* Stdout.log(`vCPUs: ${cpus.map((cpu) => `#${cpu["cpu-index"]} (${cpu.target})`).join(", ")}`)

  yield* vm.shutdown({ timeout: "10 seconds" })
  const exit = Option.getOrNull(yield* vm.exitStatus)
  yield* Stdout.log(`shut down gracefully: exit code ${exit?.code}`)
  const shutdownEvent = (yield* vm.takeEvents).find((event) => event.event === "SHUTDOWN")
  yield* Stdout.log(`last event: ${shutdownEvent?.event} ${JSON.stringify(shutdownEvent?.data)}`)
  yield* Stdout.log("demo finished: every process, socket and temp file is released with the scope")
})

NodeRuntime.runMain(Effect.scoped(program))
