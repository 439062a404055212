import { assert, describe, it, layer } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { GuestAgent } from "../src/GuestAgent.js"
import type { GuestExecFailed, GuestExecTimeout } from "../src/GuestAgentError.js"
import * as Machine from "../src/Machine.js"
import { linuxGuest, linuxGuestArgs } from "./kit/linuxGuest.js"
import { tempDir } from "./kit/qemu.js"

/** The Linux guest with its agent channel, the agent answering. */
const GuestLive = Layer.unwrapEffect(
  Effect.map(linuxGuest, (guest) => Machine.layer({ guestAgent: true, args: linuxGuestArgs(guest) }))
).pipe(
  Layer.tap((context) => Effect.orDie(Context.get(context, GuestAgent).waitReady({ timeout: "120 seconds" })))
)

const sha256 = (data: Uint8Array) => Crypto.createHash("sha256").update(data).digest("hex")

const elapsed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const started = Date.now()
    const result = yield* effect
    return [result, Date.now() - started] as const
  })

describe("GuestAgent coming up", () => {
  it.scopedLive("the agent answers once the guest has started it, not before: waitReady retries until then", () =>
    Effect.gen(function*() {
      const guest = yield* linuxGuest
      const vm = yield* Machine.make({ guestAgent: true, args: linuxGuestArgs(guest) })
      // the kernel has not even booted: no agent yet
      const early = yield* Effect.flip(vm.guestAgent.ping({ timeout: "300 millis" }))
      assert.strictEqual(early._tag, "GuestAgentUnavailable")
      assert.include(early.message, "guest-sync-delimited")
      yield* vm.guestAgent.waitReady({ timeout: "120 seconds" })
      yield* vm.guestAgent.ping()
    }))

  it.scopedLive("a machine whose guest runs no agent fails with GuestAgentUnavailable within the timeout", () =>
    Effect.gen(function*() {
      // SeaBIOS finds nothing to boot: the port is there, nobody opens it
      const vm = yield* Machine.make({ guestAgent: true, args: ["-M", "pc", "-m", "64", "-nic", "none"] })
      const [error, millis] = yield* elapsed(Effect.flip(vm.guestAgent.ping({ timeout: "2 seconds" })))
      assert.strictEqual(error._tag, "GuestAgentUnavailable")
      assert.include(error.message, "within 2s")
      assert.isAtLeast(millis, 1900)
      assert.isBelow(millis, 15_000)
    }))

  it.scopedLive("a machine launched without guestAgent fails every call at once, saying so", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults"] })
      const error = yield* Effect.flip(vm.guestAgent.exec(["true"]))
      assert.strictEqual(error._tag, "GuestAgentUnavailable")
      assert.include(error.message, "without guestAgent: true")
      assert.notInclude(vm.commandLine, "virtserialport,bus=qga-serial0.0,chardev=qga0,name=org.qemu.guest_agent.0")
    }))
})

layer(GuestLive, { excludeTestServices: true, timeout: Duration.seconds(180) })("GuestAgent on a Linux guest", (it) => {
  it.effect("ping, info, osinfo, host name and network interfaces come back typed", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      yield* agent.ping()
      const info = yield* agent.info()
      assert.match(info.version, /^7\.2/)
      assert.include(info.supported_commands.map((command) => command.name), "guest-exec")
      const os = yield* agent.osInfo()
      assert.strictEqual(os.id, "effect-qemu-guest")
      assert.match(os["kernel-release"] ?? "", /cloud-amd64$/)
      assert.strictEqual(os.machine, "x86_64")
      assert.strictEqual(yield* agent.hostName(), "linuxguest")
      const interfaces = yield* agent.networkInterfaces()
      const lo = interfaces.find((nic) => nic.name === "lo")
      assert.include(lo?.["ip-addresses"]?.map((address) => address["ip-address"]) ?? [], "127.0.0.1")
    }))

  it.effect("exec returns the exit code, stdout and stderr of a command", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      const result = yield* agent.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
      assert.deepStrictEqual(result, { exitCode: 3, signal: null, stdout: "out\n", stderr: "err\n", truncated: false })
      assert.strictEqual((yield* agent.exec(["uname", "-m"])).stdout, "x86_64\n")
    }))

  it.effect("a failing command: check turns a non-zero exit into GuestExecFailed; a missing program is the agent's error", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      const failed = yield* Effect.flip(agent.exec(["ls", "/nonexistent"], { check: true }))
      assert.strictEqual(failed._tag, "GuestExecFailed")
      const exec = failed as GuestExecFailed
      assert.notStrictEqual(exec.exitCode, 0)
      assert.include(exec.stderr, "nonexistent")
      assert.include(exec.message, `"ls" "/nonexistent" exited with code ${exec.exitCode}`)
      const missing = yield* Effect.flip(agent.exec(["/no/such/program"]))
      assert.strictEqual(missing._tag, "GuestAgentReplyError")
      assert.include(missing.message, "guest-exec failed")
      const killed = yield* agent.exec(["sh", "-c", "kill -TERM $$"])
      assert.deepInclude(killed, { exitCode: null, signal: 15 })
    }))

  it.effect("stdin input and an environment reach the command", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      assert.strictEqual((yield* agent.exec(["cat"], { input: "line one\nline two\n" })).stdout, "line one\nline two\n")
      const bytes = new Uint8Array([0, 1, 2, 255, 254, 10])
      assert.strictEqual((yield* agent.exec(["wc", "-c"], { input: bytes })).stdout.trim(), "6")
      const env = yield* agent.exec(["sh", "-c", "echo \"$GREETING\" \"$PATH\""], {
        env: { GREETING: "hello there", PATH: "/bin:/sbin" }
      })
      assert.strictEqual(env.stdout, "hello there /bin:/sbin\n")
    }))

  it.effect("a command that outlives its timeout fails with GuestExecTimeout and is killed", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      const [error, millis] = yield* elapsed(
        Effect.flip(agent.exec(["sh", "-c", "echo started; sleep 600; echo never"], { timeout: "1 second" }))
      )
      assert.strictEqual(error._tag, "GuestExecTimeout")
      const timeout = error as GuestExecTimeout
      assert.strictEqual(timeout.killed, true)
      assert.strictEqual(timeout.stdout, "started\n")
      assert.include(timeout.message, "did not finish within 1s")
      assert.isAtLeast(millis, 1000)
      // neither the shell nor its sleep is left running
      const left = yield* agent.exec(["sh", "-c", "ps -o pid,args | grep -c '[s]leep 600'"])
      assert.strictEqual(left.stdout.trim(), "0")
    }))

  it.scoped(
    "a 20 MiB file copied in and out keeps its SHA-256 (checked in the guest too)",
    () =>
      Effect.gen(function*() {
        const agent = yield* GuestAgent
        const directory = yield* tempDir("guest-agent-copy-")
        const data = Crypto.randomBytes(20 * 1024 * 1024)
        const source = Path.join(directory, "in.bin")
        const back = Path.join(directory, "out.bin")
        Fs.writeFileSync(source, data)
        const copiedIn = yield* agent.copyIn(source, "/tmp/big.bin")
        assert.deepStrictEqual(copiedIn, { bytes: data.length, sha256: sha256(data) })
        const copiedOut = yield* agent.copyOut("/tmp/big.bin", back)
        assert.deepStrictEqual(copiedOut, copiedIn)
        assert.strictEqual(sha256(Fs.readFileSync(back)), sha256(data))
        assert.deepStrictEqual(Fs.readdirSync(directory).sort(), ["in.bin", "out.bin"])
        yield* agent.exec(["rm", "/tmp/big.bin"], { check: true })
      }),
    { timeout: 240_000 }
  )

  it.scoped("copyOut of a file the guest lacks fails with the agent's error and leaves no host file", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      const directory = yield* tempDir("guest-agent-copy-")
      const error = yield* Effect.flip(agent.copyOut("/no/such/file", Path.join(directory, "x")))
      assert.strictEqual(error._tag, "GuestAgentReplyError")
      assert.include(error.message, "guest-file-open")
      assert.deepStrictEqual(Fs.readdirSync(directory), [])
    }))

  it.effect("after a command times out, the next one re-syncs and never takes the late reply for its own", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      // The agent is stopped for 3 seconds, half a second from now: a ping sent in a second times out.
      yield* agent.exec(["sh", "-c", "(sleep 0.5; kill -STOP $PPID; sleep 3; kill -CONT $PPID) > /dev/null 2>&1 &"], {
        check: true
      })
      yield* Effect.sleep("1 second")
      const error = yield* Effect.flip(agent.ping({ timeout: "1 second" }))
      assert.strictEqual(error._tag, "GuestAgentTimeout")
      assert.include(error.message, "did not answer guest-ping within 1s")
      // The late reply to the ping ({}) comes while the next command re-syncs: were it taken as this
      // command's reply, decoding would fail.
      assert.strictEqual(yield* agent.hostName({ timeout: "30 seconds" }), "linuxguest")
      yield* agent.ping()
    }))

  it.effect("a bad timeout or empty argv is refused before anything is sent, naming the argument", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      const timeout = yield* Effect.flip(agent.ping({ timeout: -1 }))
      assert.deepInclude(timeout, { _tag: "GuestAgentArgumentError", field: "timeout" })
      const argv = yield* Effect.flip(agent.exec([]))
      assert.deepInclude(argv, { _tag: "GuestAgentArgumentError", field: "argv" })
      const chunk = yield* Effect.flip(agent.copyIn("/etc/hostname", "/tmp/x", { chunkBytes: 64 * 1024 * 1024 }))
      assert.deepInclude(chunk, { _tag: "GuestAgentArgumentError", field: "chunkBytes" })
    }))
})

describe("GuestAgent freezing and shutting down", () => {
  it.scopedLive("fsfreeze freezes and thaws a mounted disk, and shutdown powers the guest off", () =>
    Effect.gen(function*() {
      const guest = yield* linuxGuest
      const directory = yield* tempDir("guest-agent-disk-")
      const disk = Path.join(directory, "disk.raw")
      Fs.writeFileSync(disk, Buffer.alloc(0))
      Fs.truncateSync(disk, 16 * 1024 * 1024)
      const vm = yield* Machine.make({
        guestAgent: true,
        args: [...linuxGuestArgs(guest), "-drive", `file=${disk},if=virtio,format=raw`]
      })
      const agent = vm.guestAgent
      yield* agent.waitReady({ timeout: "120 seconds" })
      yield* agent.exec(["sh", "-c", "mke2fs -q /dev/vda && mkdir -p /mnt && mount /dev/vda /mnt"], { check: true })
      assert.strictEqual(yield* agent.fsfreezeStatus(), "thawed")
      assert.strictEqual(yield* agent.fsfreezeFreeze(), 1)
      assert.strictEqual(yield* agent.fsfreezeStatus(), "frozen")
      assert.strictEqual(yield* agent.fsfreezeThaw(), 1)
      assert.strictEqual(yield* agent.fsfreezeStatus(), "thawed")
      yield* agent.shutdown()
      const exit = yield* vm.wait({ timeout: "60 seconds" })
      assert.strictEqual(exit.clean, true)
      assert.deepStrictEqual(Option.map(exit.shutdown, (data) => data.guest), Option.some(true))
    }))
})
