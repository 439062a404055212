// The `qmp` shell driven as a user drives it: in a terminal (tmux), keys in, screen out, against a
// QEMU started by hand.
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Qmp from "../../src/Qmp.js"
import { cliCommand, eventually, handStartedQemu, tmux } from "../kit/cli.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "cli-qmp-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

describe("effect-qemu qmp, in a terminal", () => {
  it.scopedLive(
    "completes from the live schema, prints replies and events as indented JSON, keeps history, and leaves on quit",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const socket = Path.join(dir, "qmp.sock")
        const second = Path.join(dir, "second.sock")
        const qemu = yield* handStartedQemu(socket, { secondMonitor: second })
        const history = Path.join(dir, "history")
        const term = yield* tmux(dir, cliCommand(["qmp", "--address", `unix:${socket}`, "--history", history]))
        yield* eventually(term.screen, /Connected to QEMU \d+\.\d+\.\d+ at unix:.*: \d+ commands\.\nTab completes/)

        // A command name, then an argument name, from the schema of the QEMU at the other end.
        yield* term.type("query-statu")
        yield* term.keys("Tab")
        yield* eventually(term.cursorLine, /^\(QEMU\) query-status$/)
        yield* term.keys("Enter")
        yield* eventually(
          term.screen,
          /\{\n {2}"return": \{\n {4}"status": "running",\n(.*\n)* {4}"running": true\n {2}\}\n\}/
        )
        yield* term.type("human-monitor-command comm")
        yield* term.keys("Tab")
        yield* eventually(term.cursorLine, /^\(QEMU\) human-monitor-command command-line=$/)
        yield* term.type("'info version'")
        yield* term.keys("Enter")
        yield* eventually(term.screen, /"return": "\d+\.\d+\.\d+/)

        // An event, printed as it comes.
        yield* term.type("stop")
        yield* term.keys("Enter")
        yield* eventually(term.screen, /\{\n {2}"event": "STOP",\n {2}"timestamp": \{\n {4}"seconds": \d+,/)

        // History: Up brings back the last line.
        yield* term.keys("Up")
        yield* eventually(term.cursorLine, /^\(QEMU\) stop$/)
        yield* term.keys("C-u")

        // An event another client causes while the shell waits for input: printed above the
        // prompt, and the half-typed line comes back under it.
        yield* term.type("query-")
        const other = yield* Qmp.make({ _tag: "Unix", path: second })
        yield* other.execute("cont")
        yield* eventually(term.screen, /\{\n {2}"event": "RESUME",\n/)
        yield* eventually(term.cursorLine, /^\(QEMU\) query-$/)
        yield* term.keys("C-u")

        // A line that is neither form says what is wrong, and the shell goes on.
        yield* term.type("query-status oops")
        yield* term.keys("Enter")
        yield* eventually(term.screen, /error: "oops" is not name=value/)

        yield* term.type("quit")
        yield* term.keys("Enter")
        yield* eventually(term.screen, /EXIT=0/)
        assert.isNull(qemu.exitCode)
        assert.deepStrictEqual(Fs.readFileSync(history, "utf8").split("\n"), [
          "query-status",
          "human-monitor-command command-line='info version'",
          "stop",
          "query-status oops",
          "quit",
          ""
        ])
      }),
    300_000
  )

  it.scopedLive("leaves on Ctrl-D, and ends with status 0 when a JSON quit stops QEMU", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const socket = Path.join(dir, "qmp.sock")
      const qemu = yield* handStartedQemu(socket)
      const first = yield* tmux(dir, cliCommand(["qmp", "--address", `unix:${socket}`]))
      yield* eventually(first.screen, /Tab completes/)
      yield* first.keys("C-d")
      yield* eventually(first.screen, /EXIT=0/)
      assert.isNull(qemu.exitCode)

      const second = yield* tmux(
        Fs.mkdtempSync(Path.join(dir, "t")),
        cliCommand(["qmp", "--address", `unix:${socket}`])
      )
      yield* eventually(second.screen, /Tab completes/)
      yield* second.type(`{"execute": "quit"}`)
      yield* second.keys("Enter")
      yield* eventually(second.screen, /the monitor closed the connection\nEXIT=0/)
      yield* Effect.async<void>((resume) => {
        if (qemu.exitCode !== null || qemu.signalCode !== null) return resume(Effect.void)
        qemu.once("exit", () => resume(Effect.void))
      })
      assert.strictEqual(qemu.exitCode, 0)
    }), 300_000)
})
