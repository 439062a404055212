import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ConsoleFailureMatched } from "../src/ConsoleError.js"
import * as Machine from "../src/Machine.js"
import * as Shell from "../src/Shell.js"
import { shellGuest, shellGuestArgs } from "./kit/shellGuest.js"

/** Boots the Linux guest, logs in as root and returns the machine and a shell on its console. */
const loggedIn = Effect.gen(function*() {
  const guest = yield* shellGuest
  const vm = yield* Machine.make({ console: {}, args: shellGuestArgs(guest) })
  yield* Shell.login(vm.console, { user: "root", password: "secret", timeout: "60 seconds" })
  const shell = Shell.fromConsole(vm.console)
  yield* shell.sync({ timeout: "20 seconds" })
  return { vm, shell }
})

describe("Shell on a Linux guest", () => {
  it.scopedLive("runs commands in a row and returns each one's exit code and output, echo removed", () =>
    Effect.gen(function*() {
      const { shell } = yield* loggedIn
      expect(yield* shell.run("echo hello; echo world")).toEqual({ exitCode: 0, stdout: "hello\nworld\n" })
      expect(yield* shell.run("false")).toEqual({ exitCode: 1, stdout: "" })
      expect(yield* shell.run("sh -c 'exit 42'")).toEqual({ exitCode: 42, stdout: "" })
      expect(yield* shell.run("printf no-newline")).toEqual({ exitCode: 0, stdout: "no-newline" })
      // quotes of every kind reach the shell as typed; the directory and variables persist
      yield* shell.run("cd /proc && X=\"it's\"")
      expect(yield* shell.run("echo \"$X\" $(pwd)")).toEqual({ exitCode: 0, stdout: "it's /proc\n" })
      // a syntax error fails the command only, as in a script
      const syntax = yield* shell.run("echo 'unterminated")
      expect(syntax.exitCode).toBe(2)
      expect(syntax.stdout).toContain("unterminated")
      expect((yield* shell.run("ls /nonexistent")).exitCode).not.toBe(0)
    }))

  it.scopedLive("a command's own echo never ends it: sleep 1 then the marker-like text", () =>
    Effect.gen(function*() {
      const { shell } = yield* loggedIn
      const started = Date.now()
      const result = yield* shell.run("sleep 1; echo done-x")
      expect(result).toEqual({ exitCode: 0, stdout: "done-x\n" })
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
      const via = yield* shell.execAndWaitFor("sleep 1; echo ready-x", "ready-x", { timeout: "10 seconds" })
      expect(via).toBe("ready-x")
      expect(Date.now() - started).toBeGreaterThanOrEqual(2000)
    }))

  it.scopedLive("a command longer than the terminal's width, whose echo wraps with \\r\\r\\n, runs whole", () =>
    Effect.gen(function*() {
      const { shell } = yield* loggedIn
      const word = "w".repeat(150)
      expect(yield* shell.run(`echo ${word} | wc -c`)).toEqual({ exitCode: 0, stdout: "151\n" })
      expect(yield* shell.run(`echo ${word}`)).toEqual({ exitCode: 0, stdout: `${word}\n` })
    }))

  it.scopedLive("ANSI sequences are stripped unless asked to keep them", () =>
    Effect.gen(function*() {
      const { shell } = yield* loggedIn
      const colour = "printf '\\033[31mred\\033[0m\\n'"
      expect((yield* shell.run(colour)).stdout).toBe("red\n")
      expect((yield* shell.run(colour, { stripAnsi: false })).stdout).toBe("\u001b[31mred\u001b[0m\n")
    }))

  it.scopedLive("a command that does not finish fails with ShellTimeout showing what it printed, and can be interrupted", () =>
    Effect.gen(function*() {
      const { shell } = yield* loggedIn
      const error = yield* Effect.flip(shell.run("echo partial; sleep 30", { timeout: "2 seconds" }))
      expect(error._tag).toBe("ShellTimeout")
      const timeout = error as Shell.ShellTimeout
      expect(timeout.started).toBe(true)
      expect(timeout.seen).toContain("partial")
      expect(timeout.message).toContain("did not finish within 2s")
      yield* shell.interrupt
      expect(yield* shell.run("echo after")).toEqual({ exitCode: 0, stdout: "after\n" })
    }))

  it.scopedLive("failOn fails a command at once when its output matches, never on its echo", () =>
    Effect.gen(function*() {
      const { shell } = yield* loggedIn
      const started = Date.now()
      const panic = yield* Effect.flip(
        shell.run("sleep 1; echo Kernel panic - not syncing; sleep 20", { failOn: ["Kernel panic"] })
      )
      expect(panic).toBeInstanceOf(ConsoleFailureMatched)
      // the echo holds "Kernel panic" at once; the output only after the sleep
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000)
      expect(Date.now() - started).toBeLessThan(15000)
      yield* shell.interrupt
      const bad = yield* Effect.flip(shell.run("echo one\necho two"))
      expect(bad._tag).toBe("ConsoleError")
      expect(bad.message).toContain("newline")
      expect(yield* shell.run("echo still fine")).toEqual({ exitCode: 0, stdout: "still fine\n" })
    }))

  it.scopedLive("login fails at once on a wrong password", () =>
    Effect.gen(function*() {
      const guest = yield* shellGuest
      const vm = yield* Machine.make({ console: {}, args: shellGuestArgs(guest) })
      const error = yield* Effect.flip(
        Shell.login(vm.console, { user: "root", password: "wrong", timeout: "60 seconds" })
      )
      expect(error).toBeInstanceOf(ConsoleFailureMatched)
      expect((error as ConsoleFailureMatched).matched).toBe("Login incorrect")
    }))
})
