import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Machine from "../src/Machine.js"
import * as Qmp from "../src/Qmp.js"
import { eventually, isRunning, noneArgs, tempDir } from "./kit/qemu.js"

/** A fresh base directory, so a test can see exactly what a machine left in it. */
const baseDir = tempDir()

/** Captures log lines for the test's duration. */
const captureLogs = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    const tags = [...annotations].map(([key, value]) => `${key}=${String(value)}`).join(" ")
    lines.push(`${logLevel.label} ${text} ${tags}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

describe("Machine lifecycle", () => {
  it.scopedLive("launches with QMP ready and leaves nothing behind when the scope closes", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const seen = yield* Effect.scoped(Effect.gen(function*() {
        const vm = yield* Machine.make({ args: noneArgs, baseTempDir: dir, name: "life" })
        const status = (yield* vm.execute("query-status")) as { status: string }
        assert.strictEqual(status.status, "running")
        assert.isTrue(isRunning(vm.pid))
        assert.isTrue(yield* vm.isRunning)
        assert.isTrue(
          vm.commandLine.includes("qemu-system-x86_64") || vm.commandLine.some((a) => a.endsWith("/qemu-system-x86_64"))
        )
        assert.deepStrictEqual(vm.commandLine.slice(-3), noneArgs)
        // QEMU's log, in the directory the process's machines share, not in the machine's own.
        assert.strictEqual(Fs.statSync(vm.process.logPath).mode & 0o777, 0o600)
        assert.strictEqual(Fs.statSync(Path.dirname(vm.process.logPath)).mode & 0o777, 0o700)
        assert.match(Path.basename(vm.process.logPath), /^life-\d+\.log$/)
        // The machine's own directory exists once asked for.
        assert.deepStrictEqual(Fs.readdirSync(dir).filter((entry) => entry.includes("-life-")), [])
        assert.strictEqual(Fs.statSync(vm.tempDir).mode & 0o777, 0o700)
        return { pid: vm.pid, tempDir: vm.tempDir, logPath: vm.process.logPath }
      }))
      assert.isFalse(isRunning(seen.pid))
      assert.isFalse(Fs.existsSync(seen.tempDir))
      assert.isFalse(Fs.existsSync(seen.logPath))
      assert.deepStrictEqual(Fs.readdirSync(dir), [])
      Fs.rmSync(dir, { recursive: true, force: true })
    }))

  it.scopedLive("machines that never ask for their directory create none, and share one log directory, removed with the last", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const logDirs = yield* Effect.scoped(Effect.gen(function*() {
        const vms = yield* Effect.all(
          [1, 2, 3].map(() => Machine.make({ args: noneArgs, baseTempDir: dir })),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(Fs.readdirSync(dir).length, 1)
        const logDirs = new Set(vms.map((vm) => Path.dirname(vm.process.logPath)))
        assert.strictEqual(logDirs.size, 1)
        yield* vms[0].shutdown()
        return logDirs
      }))
      for (const logDir of logDirs) assert.isFalse(Fs.existsSync(logDir))
      assert.deepStrictEqual(Fs.readdirSync(dir), [])
    }))

  it.scopedLive("a launch removes temp dirs left by controllers that died, and only those", () =>
    Effect.gen(function*() {
      const dir = yield* baseDir
      // A pid that surely no longer runs: a child that has exited and been reaped.
      const deadPid = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          const child = spawn("true")
          child.once("exit", () => resolve(child.pid!))
        })
      )
      const orphan = Path.join(dir, `effect-qemu-old-p${deadPid}-Ab12Cd`)
      const live = Path.join(dir, `effect-qemu-live-p${process.ppid}-Ab12Cd`)
      const foreign = Path.join(dir, "effect-qemu-not-ours")
      for (const path of [orphan, live, foreign]) Fs.mkdirSync(path)
      Fs.writeFileSync(Path.join(orphan, "old.log"), "left behind")
      const vm = yield* Machine.make({ args: noneArgs, baseTempDir: dir, name: "sweeper" })
      assert.isFalse(Fs.existsSync(orphan))
      assert.isTrue(Fs.existsSync(live))
      assert.isTrue(Fs.existsSync(foreign))
      assert.match(Path.basename(vm.tempDir), new RegExp(`^effect-qemu-sweeper-p${process.pid}-`))
    }))

  it.scopedLive("shutdown is graceful: quit, SHUTDOWN event, exit code 0, and idempotent", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      yield* vm.shutdown()
      const status = yield* vm.exitStatus
      assert.deepStrictEqual(Option.getOrThrow(status), { code: 0, signal: null })
      const events = yield* vm.takeEvents
      assert.isTrue(events.some((event) => event.event === "SHUTDOWN"))
      yield* vm.shutdown()
      yield* vm.kill
      assert.isFalse(yield* vm.isRunning)
    }))

  it.live("the log holds QEMU's output, also after shutdown and after release", () =>
    Effect.gen(function*() {
      const vm = yield* Effect.scoped(Effect.gen(function*() {
        const vm = yield* Machine.make({ args: [...noneArgs, "-global", "driver=foo,property=bar,value=baz"] })
        yield* vm.shutdown()
        assert.include(yield* vm.log, "global foo.bar has invalid class name")
        return vm
      }))
      assert.isFalse(Fs.existsSync(vm.tempDir))
      assert.include(yield* vm.log, "global foo.bar has invalid class name")
    }))

  it.scopedLive("a QEMU that ignores quit (SIGSTOPped) ends in AbnormalShutdown within the timeout, and is gone", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      process.kill(vm.pid, "SIGSTOP")
      const started = Date.now()
      const error = yield* Effect.flip(vm.shutdown({ timeout: "500 millis" }))
      const elapsed = Date.now() - started
      assert.strictEqual(error._tag, "AbnormalShutdown")
      assert.strictEqual(error._tag === "AbnormalShutdown" && error.signal, "SIGKILL")
      assert.isBelow(elapsed, 5000)
      assert.isFalse(isRunning(vm.pid))
      // Later calls report the same outcome.
      const again = yield* Effect.flip(vm.shutdown())
      assert.strictEqual(again, error)
    }))

  it.scopedLive("kill is immediate, reports SIGKILL and logs no warning", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      yield* Effect.gen(function*() {
        const vm = yield* Machine.make({ args: noneArgs })
        yield* vm.kill
        assert.deepStrictEqual(Option.getOrThrow(yield* vm.exitStatus), { code: null, signal: "SIGKILL" })
        assert.isFalse(isRunning(vm.pid))
      }).pipe(Effect.provide(logs.layer))
      assert.isFalse(logs.lines.some((line) => line.startsWith("WARN")), logs.lines.join("\n"))
    }))

  it.scopedLive("a shutdown without QMP sends SIGTERM and logs no warning, even if QEMU dies of it", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      const ended = yield* Effect.gen(function*() {
        const vm = yield* Machine.make({ args: noneArgs, qmp: false })
        return yield* vm.shutdown()
      }).pipe(Effect.provide(logs.layer))
      assert.isTrue(ended.status.code === 0 || ended.status.signal === "SIGTERM", JSON.stringify(ended.status))
      assert.isFalse(logs.lines.some((line) => line.startsWith("WARN")), logs.lines.join("\n"))
    }))

  it.scopedLive("a QEMU killed from outside is logged as a warning with its command line", () =>
    Effect.gen(function*() {
      const logs = captureLogs()
      yield* Effect.scoped(Effect.gen(function*() {
        const vm = yield* Machine.make({ args: noneArgs, name: "victim" })
        process.kill(vm.pid, "SIGKILL")
        const error = yield* Effect.flip(vm.qmp.closed.pipe(Effect.flatMap(Effect.fail)))
        assert.strictEqual(error._tag, "QmpDisconnected")
        yield* vm.process.awaitExit
        // The watcher of unexpected exits logs from a fiber of its own.
        yield* eventually("the exit is logged", () => logs.lines.some((line) => line.includes("exited on its own")))
      })).pipe(Effect.provide(logs.layer))
      const warning = logs.lines.find((line) => line.startsWith("WARN") && line.includes("SIGKILL"))
      assert.isDefined(warning, logs.lines.join("\n"))
      assert.include(warning!, "-M none -nodefaults")
      assert.include(warning!, "machine=victim")
    }))

  it.scopedLive("wait times out into AbnormalShutdown and the process is killed", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      const error = yield* Effect.flip(vm.wait({ timeout: "200 millis" }))
      assert.strictEqual(error._tag, "AbnormalShutdown")
      assert.isFalse(isRunning(vm.pid))
    }))

  it.scopedLive("a wrapper runs QEMU and comes first on the command line", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({
        args: noneArgs,
        wrapper: ["env", "EFFECT_QEMU_WRAPPED=1"],
        parentDeathSignal: false
      })
      assert.match(vm.commandLine[0], /(^|\/)env$/)
      assert.strictEqual(vm.commandLine[1], "EFFECT_QEMU_WRAPPED=1")
      assert.strictEqual((yield* vm.execute("query-status")).status, "running")
      // env executes QEMU in place: the pid is QEMU's, and it sees the variable.
      assert.include(Fs.readFileSync(`/proc/${vm.pid}/environ`, "utf8"), "EFFECT_QEMU_WRAPPED=1")
      assert.include(Fs.readFileSync(`/proc/${vm.pid}/comm`, "utf8"), "qemu-system-x86")
    }))

  it.scopedLive("a machine without QMP runs, and its QMP calls fail with QmpDisconnected", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs, qmp: false })
      assert.isFalse(vm.commandLine.includes("-mon"))
      const error = yield* Effect.flip(vm.execute("query-status"))
      assert.strictEqual(error._tag, "QmpDisconnected")
      assert.include(error.message, "qmp: false")
      yield* vm.shutdown({ timeout: "200 millis" }).pipe(Effect.ignore)
      assert.isFalse(isRunning(vm.pid))
    }))

  it.live("interrupting the scope's owner shuts the machine down", () =>
    Effect.gen(function*() {
      const launched = yield* Deferred.make<number>()
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const vm = yield* Machine.make({ args: noneArgs })
        yield* Deferred.succeed(launched, vm.pid)
        return yield* Effect.never
      })))
      const pid = yield* Deferred.await(launched)
      yield* Fiber.interrupt(fiber)
      assert.isFalse(isRunning(pid))
    }))

  it.live("layerConfig reads the configuration from Config", () =>
    Effect.gen(function*() {
      const name = yield* Effect.map(Machine.Machine, (vm) => vm.name).pipe(
        Effect.provide(Machine.layerConfig(Config.all({
          binary: Config.string("QEMU_BINARY"),
          name: Config.string("VM_NAME"),
          args: Config.succeed(noneArgs)
        }))),
        Effect.withConfigProvider(
          ConfigProvider.fromMap(new Map([["QEMU_BINARY", "qemu-system-x86_64"], ["VM_NAME", "from-config"]]))
        )
      )
      assert.strictEqual(name, "from-config")
      const missing = yield* Effect.flip(
        Effect.provide(Machine.Machine, Machine.layerConfig(Config.all({ binary: Config.string("QEMU_BINARY") }))).pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
        )
      )
      assert.include(String(missing), "QEMU_BINARY")
    }))

  it.live("the layer provides Machine, Qmp, Console and QemuProcess, and releases them", () =>
    Effect.gen(function*() {
      const pid = yield* Effect.gen(function*() {
        const vm = yield* Machine.Machine
        const qmp = yield* Qmp.Qmp
        assert.strictEqual(qmp, vm.qmp)
        assert.deepStrictEqual(yield* qmp.execute("query-name"), { name: "layered" })
        return vm.pid
      }).pipe(
        Effect.provide(
          Machine.layer({ args: ["-nodefaults", "-name", "layered"], name: "layered", machineType: "none" })
        )
      )
      assert.isFalse(isRunning(pid))
    }))
})

describe("Machine endings", () => {
  it.scopedLive("shutdown says QEMU exited cleanly after a SHUTDOWN for host-qmp-quit, and a second call says the same", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      const ended = yield* vm.shutdown()
      assert.deepStrictEqual(ended.status, { code: 0, signal: null })
      assert.isTrue(ended.clean)
      assert.deepStrictEqual(Option.getOrThrow(ended.shutdown), { guest: false, reason: "host-qmp-quit" })
      assert.deepStrictEqual(yield* vm.shutdown(), ended)
      assert.deepStrictEqual(yield* vm.wait(), ended)
    }))

  it.scopedLive("wait on a QEMU stopped by SIGTERM says so: host-signal", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      process.kill(vm.pid, "SIGTERM")
      const ended = yield* vm.wait({ timeout: "20 seconds" })
      assert.deepStrictEqual(Option.getOrThrow(ended.shutdown), { guest: false, reason: "host-signal" })
      assert.isTrue(ended.clean)
    }))

  it.scopedLive("wait on a migration destination whose incoming stream fails: exit code 1, no SHUTDOWN, not clean", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: [...noneArgs, "-incoming", "defer"] })
      yield* vm.execute("migrate-incoming", { uri: "exec:printf not-a-migration-stream" })
      const ended = yield* vm.wait({ timeout: "20 seconds" })
      assert.deepStrictEqual(ended.status, { code: 1, signal: null })
      assert.isFalse(ended.clean)
      assert.isTrue(Option.isNone(ended.shutdown))
    }))

  it.scopedLive("wait on a machine without QMP reports QEMU's own exit code 1 and no SHUTDOWN event", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: [...noneArgs, "-incoming", "exec:printf garbage"], qmp: false })
      const ended = yield* vm.wait({ timeout: "20 seconds" })
      assert.deepStrictEqual(ended.status, { code: 1, signal: null })
      assert.isFalse(ended.clean)
      assert.isTrue(Option.isNone(ended.shutdown))
    }))
})

describe("Machine monitor addresses", () => {
  it.scopedLive("a UNIX socket monitor works and its socket is private (0600)", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs, monitor: { _tag: "Unix" }, name: "unixmon" })
      const sock = Path.join(vm.tempDir, "unixmon-qmp.sock")
      assert.isTrue(vm.commandLine.some((arg) => arg.includes(`path=${sock}`)))
      const status = (yield* vm.execute("query-status")) as { status: string }
      assert.strictEqual(status.status, "running")
    }))

  it.scopedLive("a TCP monitor listens on loopback by default", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs, monitor: { _tag: "Tcp" } })
      assert.isTrue(vm.commandLine.some((arg) => /host=127\.0\.0\.1,port=\d+/.test(arg)))
      const status = (yield* vm.execute("query-status")) as { status: string }
      assert.strictEqual(status.status, "running")
    }))
})

describe("Machine launch failures", () => {
  const expectNothingLeft = <E>(config: Machine.MachineConfigInput, check: (error: E) => void) =>
    Effect.gen(function*() {
      const dir = yield* baseDir
      const exit = yield* Effect.exit(
        Effect.scoped(Machine.make({ ...config, baseTempDir: config.baseTempDir ?? dir }))
      )
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) check(Option.getOrThrow(Cause.failureOption(exit.cause)) as E)
      assert.deepStrictEqual(Fs.readdirSync(dir), [])
    })

  it.scopedLive("a binary that does not exist fails with BinaryNotFound before spawning", () =>
    expectNothingLeft<{ _tag: string; reason: string; message: string }>(
      { binary: "qemu-system-nonexistent" },
      (error) => {
        assert.strictEqual(error._tag, "LaunchError")
        assert.strictEqual(error.reason, "BinaryNotFound")
        assert.include(error.message, "qemu-system-nonexistent")
      }
    ))

  it.scopedLive("a directory as binary fails with NotExecutable", () =>
    expectNothingLeft<{ reason: string }>(
      { binary: "/tmp" },
      (error) => assert.strictEqual(error.reason, "NotExecutable")
    ))

  it.scopedLive("a file without execute permission fails with NotExecutable", () =>
    Effect.gen(function*() {
      const dir = yield* baseDir
      const file = Path.join(dir, "not-a-program")
      Fs.writeFileSync(file, "#!/bin/sh\n", { mode: 0o644 })
      const error = yield* Effect.flip(Effect.scoped(Machine.make({ binary: file })))
      assert.strictEqual(error._tag === "LaunchError" && error.reason, "NotExecutable")
    }))

  it.scopedLive("bad arguments fail with ExitedEarly carrying the exit code, command line and QEMU's words", () =>
    expectNothingLeft<
      { reason: string; exitCode: number; logTail: string; commandLine: Array<string>; message: string }
    >(
      { args: [...noneArgs, "-foo"] },
      (error) => {
        assert.strictEqual(error.reason, "ExitedEarly")
        assert.strictEqual(error.exitCode, 1)
        assert.include(error.logTail, "-foo: invalid option")
        assert.include(error.commandLine, "-foo")
        assert.include(error.message, "-foo: invalid option")
      }
    ))

  const configError = (name: string, config: Machine.MachineConfigInput, field: string) =>
    it.scopedLive(`${name} fails with a MachineConfigError naming ${field}`, () =>
      expectNothingLeft<{ _tag: string; field: string; message: string }>(config, (error) => {
        assert.strictEqual(error._tag, "MachineConfigError")
        assert.strictEqual(error.field, field)
      }))

  configError("an empty binary", { binary: "" }, "binary")
  configError("an unknown option", { bogus: 1 } as never, "bogus")
  configError("a relative temp dir that does not exist", { baseTempDir: "no/such/dir" }, "baseTempDir")
  configError("a UNIX socket path over 107 bytes", {
    monitor: { _tag: "Unix", path: `/tmp/${"x".repeat(120)}.sock` }
  }, "monitor.path")
  configError("a monitor address with qmp off", { qmp: false, monitor: { _tag: "Tcp" } }, "monitor")
  configError("a bad name", { name: "has space" }, "name")
  configError("a bad duration", { shutdownTimeout: "soon" as never }, "shutdownTimeout")
  configError("a negative console index", { console: { index: -1 } }, "console.index")
  configError("an opaque with a comma", { fds: [{ fd: 0, set: 1, opaque: "a,b" }] }, "fds.0.opaque")

  it.scopedLive("arguments with spaces, quotes, $() and newlines reach QEMU verbatim", () =>
    Effect.gen(function*() {
      const name = "a b 'c' \"d\" $(touch /tmp/pwned) `x`\nline2"
      const vm = yield* Machine.make({ args: [...noneArgs, "-name", name.replaceAll(",", ",,")] })
      const reply = (yield* vm.execute("query-name")) as { name: string }
      assert.strictEqual(reply.name, name)
      assert.isFalse(Fs.existsSync("/tmp/pwned"))
    }))
})

describe("Several machines", () => {
  it.live("two machines composed as two layers each answer under their own name", () =>
    Effect.gen(function*() {
      class Client extends Context.Tag("test/Client")<Client, Machine.MachineService>() {}
      class Server extends Context.Tag("test/Server")<Server, Machine.MachineService>() {}
      const client = Layer.effect(Client, Machine.Machine).pipe(
        Layer.provide(Machine.layer({ args: [...noneArgs, "-name", "client"] }))
      )
      const server = Layer.effect(Server, Machine.Machine).pipe(
        Layer.provide(Machine.layer({ args: [...noneArgs, "-name", "server"] }))
      )
      const names = yield* Effect.gen(function*() {
        const c = yield* Client
        const s = yield* Server
        assert.notStrictEqual(c.pid, s.pid)
        return [yield* c.execute("query-name"), yield* s.execute("query-name")]
      }).pipe(Effect.provide(Layer.merge(client, server)))
      assert.deepStrictEqual(names, [{ name: "client" }, { name: "server" }])
    }))

  it.live("twenty machines made concurrently all answer and are all released", () =>
    Effect.gen(function*() {
      const pids = yield* Effect.scoped(Effect.gen(function*() {
        const vms = yield* Effect.forEach(
          Array.from({ length: 20 }, (_, i) => i),
          (i) => Machine.make({ args: [...noneArgs, "-name", `fleet-${i}`], name: `fleet-${i}` }),
          { concurrency: "unbounded" }
        )
        const names = yield* Effect.forEach(vms, (vm) => vm.execute("query-name"), { concurrency: "unbounded" })
        assert.deepStrictEqual(names, vms.map((_, i) => ({ name: `fleet-${i}` })))
        return vms.map((vm) => vm.pid)
      }))
      assert.strictEqual(new Set(pids).size, 20)
      for (const pid of pids) assert.isFalse(isRunning(pid))
    }))

  it.live("a scope closed explicitly releases its machine", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const vm = yield* Machine.make({ args: noneArgs }).pipe(Scope.extend(scope))
      yield* Scope.close(scope, Exit.void)
      assert.isFalse(isRunning(vm.pid))
    }))
})
