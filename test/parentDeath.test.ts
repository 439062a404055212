import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parentDeathWrapper, resolveParentDeathWrapper } from "../src/internal/parentDeath.js"
import { eventually, isRunning, noneArgs, procStat, qemuBinary } from "./kit/qemu.js"

// The Node parent: spawns the argv given as JSON from its main thread, prints the pid, then idles.
const parentScript = `
import { spawn } from "node:child_process"
const argv = JSON.parse(process.argv[1])
const child = spawn(argv[0], argv.slice(1), { stdio: "ignore" })
child.on("spawn", () => process.stdout.write(child.pid + "\\n"))
child.on("error", (error) => { console.error(error.message); process.exit(1) })
setInterval(() => {}, 1 << 30)
`

const qemuArgv = [qemuBinary, ...noneArgs, "-display", "none", "-S"]

// A Node process that spawns QEMU with `prefix`; resolves QEMU's pid once QEMU (not setpriv) runs.
// Release SIGKILLs whatever is still alive: the Node parent and, as a safety net, QEMU.
const nodeParentOfQemu = (prefix: ReadonlyArray<string>): Effect.Effect<
  { readonly parent: ChildProcess; readonly qemuPid: number },
  Error,
  Scope.Scope
> =>
  Effect.gen(function*() {
    let qemuPid = 0
    const parent = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--input-type=module", "-e", parentScript, JSON.stringify([...prefix, ...qemuArgv])], {
          stdio: ["ignore", "pipe", "inherit"]
        })
      ),
      (parent) =>
        Effect.gen(function*() {
          if (parent.exitCode === null && parent.signalCode === null) parent.kill("SIGKILL")
          if (qemuPid > 0 && isRunning(qemuPid)) {
            yield* Effect.try(() => process.kill(qemuPid, "SIGKILL")).pipe(Effect.ignore)
            yield* eventually("QEMU reaped", () => procStat(qemuPid) === undefined).pipe(Effect.ignore)
          }
        })
    )
    qemuPid = yield* Effect.async<number, Error>((resume) => {
      let out = ""
      parent.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString("utf8")
        if (out.includes("\n")) resume(Effect.succeed(Number(out.trim())))
      })
      parent.once("exit", (code) => resume(Effect.fail(new Error(`the Node parent exited (${code}) before QEMU ran`))))
    }).pipe(Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("no QEMU pid within 10 seconds") }))
    // setpriv execs QEMU in place: same pid, new name once the exec is done.
    yield* eventually("QEMU exec'd", () => procStat(qemuPid)?.comm === "qemu-system-x86", 5000)
    return { parent, qemuPid }
  })

describe("parentDeathWrapper", () => {
  it.live("is available here and wraps QEMU with setpriv --pdeathsig KILL", () =>
    Effect.gen(function*() {
      const wrapper = yield* parentDeathWrapper
      assert.strictEqual(wrapper._tag, "Available")
      assert.deepStrictEqual(wrapper.prefix.slice(1), ["--pdeathsig", "KILL", "--"])
      assert.strictEqual(yield* parentDeathWrapper, wrapper)
    }))

  it.live("without setpriv on PATH it gives an empty prefix and says to install util-linux", () =>
    Effect.gen(function*() {
      const wrapper = yield* resolveParentDeathWrapper({ path: "/nonexistent" })
      assert.strictEqual(wrapper._tag, "Unavailable")
      assert.deepStrictEqual(wrapper.prefix, [])
      assert.include(wrapper._tag === "Unavailable" && wrapper.reason, "util-linux")
    }))

  it.scopedLive("a setpriv whose help has no --pdeathsig (util-linux before 2.33) is refused, naming the version needed", () =>
    Effect.gen(function*() {
      const dir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "effect-qemu-old-setpriv-"))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      // Prints an old help text, and tells nothing about the option in its own bytes.
      fs.writeFileSync(path.join(dir, "setpriv"), "#!/bin/sh\necho \"Usage: setpriv [options] <program>\"\n", {
        mode: 0o755
      })
      const wrapper = yield* resolveParentDeathWrapper({ path: dir })
      assert.strictEqual(wrapper._tag, "Unavailable")
      assert.include(wrapper._tag === "Unavailable" && wrapper.reason, "2.33")
    }))

  it.live("off Linux it gives an empty prefix", () =>
    Effect.gen(function*() {
      const wrapper = yield* resolveParentDeathWrapper({ platform: "darwin" })
      assert.deepStrictEqual({ _tag: wrapper._tag, prefix: wrapper.prefix }, { _tag: "Unavailable", prefix: [] })
    }))

  it.scopedLive("QEMU spawned through the prefix dies when its Node parent is SIGKILLed", () =>
    Effect.gen(function*() {
      const wrapper = yield* parentDeathWrapper
      const { parent, qemuPid } = yield* nodeParentOfQemu(wrapper.prefix)
      // Stays alive while the parent does, with time for any other thread to come and go.
      yield* Effect.sleep("500 millis")
      assert.strictEqual(isRunning(qemuPid), true)
      parent.kill("SIGKILL")
      yield* eventually("QEMU dead", () => !isRunning(qemuPid), 2000)
      assert.strictEqual(isRunning(qemuPid), false)
    }))

  it.scopedLive("without the prefix QEMU outlives a SIGKILLed Node parent (why the wrapper exists)", () =>
    Effect.gen(function*() {
      const { parent, qemuPid } = yield* nodeParentOfQemu([])
      parent.kill("SIGKILL")
      yield* Effect.sleep("1 second")
      assert.strictEqual(isRunning(qemuPid), true)
    }))
})
