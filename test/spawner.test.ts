import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import { spawner, stopSpawner } from "../src/internal/spawner.js"
import { spawnerScript } from "../src/internal/spawnerScript.js"
import * as Machine from "../src/Machine.js"
import { root } from "./kit/cli.js"
import { eventually, isRunning, noneArgs } from "./kit/qemu.js"

const parentOf = (pid: number): number => {
  const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
}

/** The spawner running and ready, as after a process's first launch. */
const spawnerReady = Effect.gen(function*() {
  const prefix = ["setpriv", "--pdeathsig", "KILL", "--"]
  spawner(prefix, [])
  yield* eventually("the spawner ready", () => spawner(prefix, []) !== undefined, 10_000)
})

describe("spawner", () => {
  it.scopedLive("starts QEMU as its own child: QMP, console, log and exit status come through the handed-over sockets", () =>
    Effect.gen(function*() {
      yield* spawnerReady
      const vm = yield* Machine.make({ args: [...noneArgs, "-S"], console: {} })
      const helper = parentOf(vm.pid)
      assert.notStrictEqual(helper, process.pid)
      assert.strictEqual(parentOf(helper), process.pid)
      const status = yield* vm.execute("query-status")
      assert.strictEqual(status.status, "prelaunch")
      yield* vm.hmp("info version")
      const exit = yield* vm.shutdown()
      assert.deepStrictEqual(exit.status, { code: 0, signal: null })
      assert.isTrue(Option.isSome(exit.shutdown))
    }))

  it.scopedLive("gives QEMU the controller's environment as it is at the launch, changed since the spawner started", () =>
    Effect.gen(function*() {
      yield* spawnerReady
      process.env.EFFECT_QEMU_SPAWNER_TEST = "changed"
      yield* Effect.addFinalizer(() => Effect.sync(() => delete process.env.EFFECT_QEMU_SPAWNER_TEST))
      const vm = yield* Machine.make({ args: noneArgs })
      assert.notStrictEqual(parentOf(vm.pid), process.pid)
      const environ = Fs.readFileSync(`/proc/${vm.pid}/environ`, "utf8").split("\0")
      assert.include(environ, "EFFECT_QEMU_SPAWNER_TEST=changed")
    }))

  it.live("exits quietly (status 0, nothing on stderr) when its controller goes away before it is ready", () =>
    Effect.async<{ code: number | null; stderr: string }>((resume) => {
      const helper = ChildProcess.spawn(process.execPath, ["-e", spawnerScript], {
        stdio: ["ignore", "ignore", "pipe", "ipc"]
      })
      let stderr = ""
      helper.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
      helper.disconnect()
      helper.once("exit", (code) => resume(Effect.succeed({ code, stderr })))
    }).pipe(Effect.map(({ code, stderr }) => {
      assert.strictEqual(stderr, "")
      assert.strictEqual(code, 0)
    })))

  it.scopedLive("reports QEMU's own exit code and keeps what it wrote to stderr", () =>
    Effect.gen(function*() {
      yield* spawnerReady
      const error = yield* Effect.flip(Machine.make({ args: [...noneArgs, "-no-such-option"] }))
      assert.strictEqual(error._tag, "LaunchError")
      if (error._tag !== "LaunchError") return
      assert.strictEqual(error.exitCode, 1)
      assert.include(error.logTail ?? "", "no-such-option")
    }))

  it.scopedLive("is not used when a descriptor of the controller's goes to QEMU (-add-fd): QEMU is spawned directly", () =>
    Effect.gen(function*() {
      yield* spawnerReady
      const fd = Fs.openSync("/dev/null", "r")
      yield* Effect.addFinalizer(() => Effect.sync(() => Fs.closeSync(fd)))
      const vm = yield* Machine.make({ args: noneArgs, fds: [{ fd, set: 1 }] })
      assert.strictEqual(parentOf(vm.pid), process.pid)
    }))

  it.scopedLive("a QEMU dies with its spawner, and its machine says it was killed", () =>
    Effect.gen(function*() {
      yield* spawnerReady
      const vm = yield* Machine.make({ args: noneArgs })
      const helper = parentOf(vm.pid)
      process.kill(helper, "SIGKILL")
      yield* eventually("QEMU gone", () => !isRunning(vm.pid), 5000)
      const status = yield* vm.process.waitExit("5 seconds")
      assert.isTrue(Option.isSome(status))
      yield* Effect.promise(stopSpawner)
    }))

  it.scopedLive("QEMUs it started die when the controller is SIGKILLed", () =>
    Effect.gen(function*() {
      // A controller of its own: its first two launches are direct (the second starts the
      // spawner), the next ones go through the spawner.
      const script = `
        import * as Effect from "effect/Effect"
        import * as Machine from ${JSON.stringify(pathToFileURL(Path.join(root, "src/Machine.ts")).href)}
        const config = { args: ["-M", "none", "-nodefaults"] }
        await Effect.runPromise(Effect.gen(function*() {
          yield* Effect.scoped(Machine.make(config))
          yield* Effect.scoped(Machine.make(config))
          yield* Effect.sleep("3 seconds")
          const vms = yield* Effect.all([Machine.make(config), Machine.make(config)], { concurrency: 2 })
          process.stdout.write(JSON.stringify(vms.map((vm) => vm.pid)) + "\\n")
          yield* Effect.never
        }).pipe(Effect.scoped))
      `
      const controller = yield* Effect.acquireRelease(
        Effect.sync(() =>
          ChildProcess.spawn(process.execPath, [
            "--import",
            pathToFileURL(Path.join(root, "node_modules/tsx/dist/loader.mjs")).href,
            "--input-type=module",
            "-e",
            script
          ], { cwd: root, stdio: ["ignore", "pipe", "inherit"] })
        ),
        (child) =>
          Effect.sync(() => {
            child.kill("SIGKILL")
            // Its machines' temp directories: a SIGKILLed controller cleans up nothing.
            for (const entry of Fs.readdirSync(Os.tmpdir())) {
              if (entry.startsWith("effect-qemu-") && entry.includes(`-p${child.pid}-`)) {
                Fs.rmSync(Path.join(Os.tmpdir(), entry), { recursive: true, force: true })
              }
            }
          })
      )
      const pids = yield* Effect.async<ReadonlyArray<number>, Error>((resume) => {
        let out = ""
        controller.stdout!.on("data", (chunk: Buffer) => {
          out += chunk.toString()
          if (out.includes("\n")) resume(Effect.succeed(JSON.parse(out) as ReadonlyArray<number>))
        })
        controller.once("exit", (code) => resume(Effect.fail(new Error(`the controller exited (${code})`))))
      }).pipe(Effect.timeout("30 seconds"))
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          for (const pid of pids) if (isRunning(pid)) process.kill(pid, "SIGKILL")
        })
      )
      for (const pid of pids) assert.notStrictEqual(parentOf(parentOf(pid)), parentOf(pid))
      assert.isTrue(pids.every((pid) => parentOf(pid) !== controller.pid))
      controller.kill("SIGKILL")
      yield* eventually("every QEMU gone", () => pids.every((pid) => !isRunning(pid)), 5000)
    }))
})
