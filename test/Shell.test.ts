import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { ConsoleFailureMatched } from "../src/ConsoleError.js"
import * as Machine from "../src/Machine.js"
import * as Shell from "../src/Shell.js"
import { linuxGuest, linuxGuestArgs } from "./kit/linuxGuest.js"

/** Boots the Linux guest, logs in as root and returns the machine and a shell on its console. */
const loggedIn = Effect.gen(function*() {
  const guest = yield* linuxGuest
  const vm = yield* Machine.make({ console: {}, args: linuxGuestArgs(guest) })
  yield* Shell.login(vm.console, { user: "root", password: "secret", timeout: "60 seconds" })
  const shell = Shell.fromConsole(vm.console)
  yield* shell.sync({ timeout: "20 seconds" })
  return { vm, shell }
})

describe("Shell on a Linux guest", () => {
  it.scopedLive("runs commands in a row and returns each one's exit code and output, echo removed", () =>
    Effect.gen(function*() {
      const { shell } = yield* loggedIn
      assert.deepStrictEqual(yield* shell.run("echo hello; echo world"), { exitCode: 0, stdout: "hello\nworld\n" })
      assert.deepStrictEqual(yield* shell.run("false"), { exitCode: 1, stdout: "" })
      assert.deepStrictEqual(yield* shell.run("sh -c 'exit 42'"), { exitCode: 42, stdout: "" })
      assert.deepStrictEqual(yield* shell.run("printf no-newline"), { exitCode: 0, stdout: "no-newline" })
      // quotes of every kind reach the shell as typed; the directory and variables persist
      yield* shell.run("cd /proc && X=\"it's\"")
      assert.deepStrictEqual(yield* shell.run("echo \"$X\" $(pwd)"), { exitCode: 0, stdout: "it's /proc\n" })
      // a syntax error fails the command only, as in a script
      const syntax = yield* shell.run("echo 'unterminated")
      assert.strictEqual(syntax.exitCode, 2)
      assert.include(syntax.stdout, "unterminated")
      assert.notStrictEqual((yield* shell.run("ls /nonexistent")).exitCode, 0)
    }))

  it.scopedLive("a command's own echo never ends it: sleep 1 then the marker-like text", () =>
    Effect.gen(function*() {
      const { shell } = yield* loggedIn
      const started = Date.now()
      const result = yield* shell.run("sleep 1; echo done-x")
      assert.deepStrictEqual(result, { exitCode: 0, stdout: "done-x\n" })
      assert.isAtLeast(Date.now() - started, 1000)
      const via = yield* shell.execAndWaitFor("sleep 1; echo ready-x", "ready-x", { timeout: "10 seconds" })
      assert.strictEqual(via, "ready-x")
      assert.isAtLeast(Date.now() - started, 2000)
    }))

  it.scopedLive("a command longer than the terminal's width, whose echo wraps with \\r\\r\\n, runs whole", () =>
    Effect.gen(function*() {
      const { shell } = yield* loggedIn
      const word = "w".repeat(150)
      assert.deepStrictEqual(yield* shell.run(`echo ${word} | wc -c`), { exitCode: 0, stdout: "151\n" })
      assert.deepStrictEqual(yield* shell.run(`echo ${word}`), { exitCode: 0, stdout: `${word}\n` })
    }))

  it.scopedLive("ANSI sequences are stripped unless asked to keep them", () =>
    Effect.gen(function*() {
      const { shell } = yield* loggedIn
      const colour = "printf '\\033[31mred\\033[0m\\n'"
      assert.strictEqual((yield* shell.run(colour)).stdout, "red\n")
      assert.strictEqual((yield* shell.run(colour, { stripAnsi: false })).stdout, "\u001b[31mred\u001b[0m\n")
    }))

  it.scopedLive("a command that does not finish fails with ShellTimeout showing what it printed, and can be interrupted", () =>
    Effect.gen(function*() {
      const { shell } = yield* loggedIn
      const error = yield* Effect.flip(shell.run("echo partial; sleep 30", { timeout: "2 seconds" }))
      assert.strictEqual(error._tag, "ShellTimeout")
      const timeout = error as Shell.ShellTimeout
      assert.strictEqual(timeout.started, true)
      assert.include(timeout.seen, "partial")
      assert.include(timeout.message, "did not finish within 2s")
      yield* shell.interrupt
      assert.deepStrictEqual(yield* shell.run("echo after"), { exitCode: 0, stdout: "after\n" })
    }))

  it.scopedLive("failOn fails a command at once when its output matches, never on its echo", () =>
    Effect.gen(function*() {
      const { shell } = yield* loggedIn
      const started = Date.now()
      const panic = yield* Effect.flip(
        shell.run("sleep 1; echo Kernel panic - not syncing; sleep 20", { failOn: ["Kernel panic"] })
      )
      assert.instanceOf(panic, ConsoleFailureMatched)
      // the echo holds "Kernel panic" at once; the output only after the sleep
      assert.isAtLeast(Date.now() - started, 1000)
      assert.isBelow(Date.now() - started, 15000)
      yield* shell.interrupt
      const bad = yield* Effect.flip(shell.run("echo one\necho two"))
      assert.strictEqual(bad._tag, "ConsoleError")
      assert.include(bad.message, "newline")
      assert.deepStrictEqual(yield* shell.run("echo still fine"), { exitCode: 0, stdout: "still fine\n" })
    }))

  it.scopedLive("login fails at once on a wrong password", () =>
    Effect.gen(function*() {
      const guest = yield* linuxGuest
      const vm = yield* Machine.make({ console: {}, args: linuxGuestArgs(guest) })
      const error = yield* Effect.flip(
        Shell.login(vm.console, { user: "root", password: "wrong", timeout: "60 seconds" })
      )
      assert.instanceOf(error, ConsoleFailureMatched)
      assert.strictEqual((error as ConsoleFailureMatched).matched, "Login incorrect")
    }))
})
