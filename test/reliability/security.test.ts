/**
 * What a machine puts on disk and on the network is its user's alone: the temp dir is 0700, the
 * monitor socket and the logs 0600, a TCP monitor listens on loopback unless told otherwise.
 *
 * The monitor's listener lives only until QEMU connects, so a probe looks at it from inside the
 * launch: a wrapper script that records modes and listening sockets, then execs QEMU.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Machine from "../../src/Machine.js"
import { noneArgs } from "../kit/qemu.js"
import { baseDir } from "./kit.js"

/** Writes the probe into `dir`; its report lands in `dir/report.*` when a machine launches through it. */
const probe = (dir: string) => {
  const script = Path.join(dir, "probe.sh")
  Fs.writeFileSync(
    script,
    `#!/bin/sh
# QEMU's stdout is the machine's log file, in the log directory of the process's machines; the
# monitor socket is in the machine's temp dir.
log=$(readlink /proc/$$/fd/1)
tmp=$(dirname "$log")
stat -c '%a %F %n' "$tmp" "$tmp"/* > '${dir}/report.modes'
for arg in "$@"; do
  case "$arg" in
    *,path=*) sock=\${arg#*,path=}; sock=\${sock%%,*}; stat -c '%a %F %n' "$(dirname "$sock")" "$sock" >> '${dir}/report.modes' ;;
  esac
done
cat /proc/net/tcp > '${dir}/report.tcp'
exec "$@"
`,
    { mode: 0o700 }
  )
  return {
    script,
    modes: () =>
      Fs.readFileSync(Path.join(dir, "report.modes"), "utf8").trim().split("\n").map((line) => {
        const [mode, ...rest] = line.split(" ")
        const name = rest.pop()!
        return { mode: parseInt(mode, 8), type: rest.join(" "), name }
      }),
    /** Listening TCP sockets as "a.b.c.d:port". */
    listening: () =>
      Fs.readFileSync(Path.join(dir, "report.tcp"), "utf8").trim().split("\n").slice(1).flatMap((line) => {
        const [, local, , state] = line.trim().split(/\s+/)
        if (state !== "0A") return []
        const [hexAddress, hexPort] = local.split(":")
        const octets = hexAddress.match(/../g)!.map((byte) => parseInt(byte, 16)).reverse()
        return [`${octets.join(".")}:${parseInt(hexPort, 16)}`]
      })
  }
}

describe("Nothing of the machine is readable by others", () => {
  it.scopedLive("temp dir and log dir 0700; monitor socket, QEMU log and console log 0600", () =>
    Effect.gen(function*() {
      const dir = yield* baseDir
      const seen = probe(dir)
      const consoleLog = Path.join(dir, "console.log")
      const vm = yield* Machine.make({
        args: noneArgs,
        baseTempDir: dir,
        name: "private",
        wrapper: [seen.script],
        monitor: { _tag: "Unix" },
        console: { logFile: consoleLog }
      })
      const modes = seen.modes()
      const byName = new Map(modes.map((entry) => [entry.name, entry]))
      assert.deepStrictEqual(byName.get(vm.tempDir), { mode: 0o700, type: "directory", name: vm.tempDir })
      const socket = byName.get(Path.join(vm.tempDir, "private-qmp.sock"))
      assert.deepStrictEqual([socket?.mode, socket?.type], [0o600, "socket"], JSON.stringify(modes))
      // QEMU's log lives in the directory the process's machines share.
      const logDir = Path.dirname(vm.process.logPath)
      assert.deepStrictEqual(byName.get(logDir), { mode: 0o700, type: "directory", name: logDir })
      const log = byName.get(vm.process.logPath)
      assert.deepStrictEqual([log?.mode, log?.type], [0o600, "regular empty file"], JSON.stringify(modes))
      for (const entry of modes) assert.strictEqual(entry.mode & 0o077, 0, `${entry.name} is open to others`)
      assert.strictEqual(Fs.statSync(consoleLog).mode & 0o777, 0o600)
      assert.strictEqual(Fs.statSync(vm.process.logPath).mode & 0o777, 0o600)
      assert.deepStrictEqual(yield* vm.execute("query-status"), { status: "running", singlestep: false, running: true })
    }))

  it.scopedLive("a monitor socket in a shared sockDir is 0600 too", () =>
    Effect.gen(function*() {
      const dir = yield* baseDir
      const shared = Path.join(dir, "shared")
      Fs.mkdirSync(shared, { mode: 0o755 })
      const seen = probe(dir)
      yield* Machine.make({
        args: noneArgs,
        baseTempDir: dir,
        name: "shared",
        wrapper: [seen.script],
        monitor: { _tag: "Unix" },
        sockDir: shared
      })
      const socket = seen.modes().find((entry) => entry.name === Path.join(shared, "shared-qmp.sock"))
      assert.deepStrictEqual([socket?.mode, socket?.type], [0o600, "socket"])
    }))

  it.scopedLive("a TCP monitor listens on 127.0.0.1 only, unless the caller names another address", () =>
    Effect.gen(function*() {
      const dir = yield* baseDir
      const seen = probe(dir)
      const vm = yield* Machine.make({
        args: noneArgs,
        baseTempDir: dir,
        wrapper: [seen.script],
        monitor: { _tag: "Tcp" }
      })
      const port = Number(/port=(\d+)/.exec(vm.commandLine.join(" "))![1])
      const ours = seen.listening().filter((address) => address.endsWith(`:${port}`))
      assert.deepStrictEqual(ours, [`127.0.0.1:${port}`])
      yield* vm.shutdown()

      const named = yield* Machine.make({
        args: noneArgs,
        baseTempDir: dir,
        wrapper: [seen.script],
        monitor: { _tag: "Tcp", host: "127.0.0.2" }
      })
      const namedPort = Number(/port=(\d+)/.exec(named.commandLine.join(" "))![1])
      assert.deepStrictEqual(seen.listening().filter((address) => address.endsWith(`:${namedPort}`)), [
        `127.0.0.2:${namedPort}`
      ])
    }))
})
