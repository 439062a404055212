import { describe, expect, it, layer } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Option } from "effect"
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
      expect(early._tag).toBe("GuestAgentUnavailable")
      expect(early.message).toContain("guest-sync-delimited")
      yield* vm.guestAgent.waitReady({ timeout: "120 seconds" })
      yield* vm.guestAgent.ping()
    }))

  it.scopedLive("a machine whose guest runs no agent fails with GuestAgentUnavailable within the timeout", () =>
    Effect.gen(function*() {
      // SeaBIOS finds nothing to boot: the port is there, nobody opens it
      const vm = yield* Machine.make({ guestAgent: true, args: ["-M", "pc", "-m", "64", "-nic", "none"] })
      const [error, millis] = yield* elapsed(Effect.flip(vm.guestAgent.ping({ timeout: "2 seconds" })))
      expect(error._tag).toBe("GuestAgentUnavailable")
      expect(error.message).toContain("within 2s")
      expect(millis).toBeGreaterThanOrEqual(1900)
      expect(millis).toBeLessThan(15_000)
    }))

  it.scopedLive("a machine launched without guestAgent fails every call at once, saying so", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults"] })
      const error = yield* Effect.flip(vm.guestAgent.exec(["true"]))
      expect(error._tag).toBe("GuestAgentUnavailable")
      expect(error.message).toContain("without guestAgent: true")
      expect(vm.commandLine).not.toContain("virtserialport,bus=qga-serial0.0,chardev=qga0,name=org.qemu.guest_agent.0")
    }))
})

layer(GuestLive, { excludeTestServices: true, timeout: Duration.seconds(180) })("GuestAgent on a Linux guest", (it) => {
  it.effect("ping, info, osinfo, host name and network interfaces come back typed", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      yield* agent.ping()
      const info = yield* agent.info()
      expect(info.version).toMatch(/^7\.2/)
      expect(info.supported_commands.map((command) => command.name)).toContain("guest-exec")
      const os = yield* agent.osInfo()
      expect(os.id).toBe("effect-qemu-guest")
      expect(os["kernel-release"]).toMatch(/cloud-amd64$/)
      expect(os.machine).toBe("x86_64")
      expect(yield* agent.hostName()).toBe("linuxguest")
      const interfaces = yield* agent.networkInterfaces()
      const lo = interfaces.find((nic) => nic.name === "lo")
      expect(lo?.["ip-addresses"]?.map((address) => address["ip-address"])).toContain("127.0.0.1")
    }))

  it.effect("exec returns the exit code, stdout and stderr of a command", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      const result = yield* agent.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
      expect(result).toEqual({ exitCode: 3, signal: null, stdout: "out\n", stderr: "err\n", truncated: false })
      expect((yield* agent.exec(["uname", "-m"])).stdout).toBe("x86_64\n")
    }))

  it.effect("a failing command: check turns a non-zero exit into GuestExecFailed; a missing program is the agent's error", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      const failed = yield* Effect.flip(agent.exec(["ls", "/nonexistent"], { check: true }))
      expect(failed._tag).toBe("GuestExecFailed")
      const exec = failed as GuestExecFailed
      expect(exec.exitCode).not.toBe(0)
      expect(exec.stderr).toContain("nonexistent")
      expect(exec.message).toContain(`"ls" "/nonexistent" exited with code ${exec.exitCode}`)
      const missing = yield* Effect.flip(agent.exec(["/no/such/program"]))
      expect(missing._tag).toBe("GuestAgentReplyError")
      expect(missing.message).toContain("guest-exec failed")
      const killed = yield* agent.exec(["sh", "-c", "kill -TERM $$"])
      expect(killed).toMatchObject({ exitCode: null, signal: 15 })
    }))

  it.effect("stdin input and an environment reach the command", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      expect((yield* agent.exec(["cat"], { input: "line one\nline two\n" })).stdout).toBe("line one\nline two\n")
      const bytes = new Uint8Array([0, 1, 2, 255, 254, 10])
      expect((yield* agent.exec(["wc", "-c"], { input: bytes })).stdout.trim()).toBe("6")
      const env = yield* agent.exec(["sh", "-c", "echo \"$GREETING\" \"$PATH\""], {
        env: { GREETING: "hello there", PATH: "/bin:/sbin" }
      })
      expect(env.stdout).toBe("hello there /bin:/sbin\n")
    }))

  it.effect("a command that outlives its timeout fails with GuestExecTimeout and is killed", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      const [error, millis] = yield* elapsed(
        Effect.flip(agent.exec(["sh", "-c", "echo started; sleep 600; echo never"], { timeout: "1 second" }))
      )
      expect(error._tag).toBe("GuestExecTimeout")
      const timeout = error as GuestExecTimeout
      expect(timeout.killed).toBe(true)
      expect(timeout.stdout).toBe("started\n")
      expect(timeout.message).toContain("did not finish within 1s")
      expect(millis).toBeGreaterThanOrEqual(1000)
      // neither the shell nor its sleep is left running
      const left = yield* agent.exec(["sh", "-c", "ps -o pid,args | grep -c '[s]leep 600'"])
      expect(left.stdout.trim()).toBe("0")
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
        expect(copiedIn).toEqual({ bytes: data.length, sha256: sha256(data) })
        const copiedOut = yield* agent.copyOut("/tmp/big.bin", back)
        expect(copiedOut).toEqual(copiedIn)
        expect(sha256(Fs.readFileSync(back))).toBe(sha256(data))
        expect(Fs.readdirSync(directory).sort()).toEqual(["in.bin", "out.bin"])
        yield* agent.exec(["rm", "/tmp/big.bin"], { check: true })
      }),
    { timeout: 240_000 }
  )

  it.scoped("copyOut of a file the guest lacks fails with the agent's error and leaves no host file", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      const directory = yield* tempDir("guest-agent-copy-")
      const error = yield* Effect.flip(agent.copyOut("/no/such/file", Path.join(directory, "x")))
      expect(error._tag).toBe("GuestAgentReplyError")
      expect(error.message).toContain("guest-file-open")
      expect(Fs.readdirSync(directory)).toEqual([])
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
      expect(error._tag).toBe("GuestAgentTimeout")
      expect(error.message).toContain("did not answer guest-ping within 1s")
      // The late reply to the ping ({}) comes while the next command re-syncs: were it taken as this
      // command's reply, decoding would fail.
      expect(yield* agent.hostName({ timeout: "30 seconds" })).toBe("linuxguest")
      yield* agent.ping()
    }))

  it.effect("a bad timeout or empty argv is refused before anything is sent, naming the argument", () =>
    Effect.gen(function*() {
      const agent = yield* GuestAgent
      const timeout = yield* Effect.flip(agent.ping({ timeout: -1 }))
      expect(timeout).toMatchObject({ _tag: "GuestAgentArgumentError", field: "timeout" })
      const argv = yield* Effect.flip(agent.exec([]))
      expect(argv).toMatchObject({ _tag: "GuestAgentArgumentError", field: "argv" })
      const chunk = yield* Effect.flip(agent.copyIn("/etc/hostname", "/tmp/x", { chunkBytes: 64 * 1024 * 1024 }))
      expect(chunk).toMatchObject({ _tag: "GuestAgentArgumentError", field: "chunkBytes" })
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
      expect(yield* agent.fsfreezeStatus()).toBe("thawed")
      expect(yield* agent.fsfreezeFreeze()).toBe(1)
      expect(yield* agent.fsfreezeStatus()).toBe("frozen")
      expect(yield* agent.fsfreezeThaw()).toBe(1)
      expect(yield* agent.fsfreezeStatus()).toBe("thawed")
      yield* agent.shutdown()
      const exit = yield* vm.wait({ timeout: "60 seconds" })
      expect(exit.clean).toBe(true)
      expect(Option.map(exit.shutdown, (data) => data.guest)).toEqual(Option.some(true))
    }))
})
