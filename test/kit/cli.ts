/**
 * Runs the `effect-qemu` command line from source as one Node process (tsx as a loader, not as a
 * wrapper process, so that a signal sent to the pid reaches the command line itself), and a QEMU
 * started by hand with its QMP monitor on a UNIX socket.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { qemuBinary } from "./qemu.js"

export const root = fileURLToPath(new URL("../..", import.meta.url))

/** The command line that runs `effect-qemu ARGS` from source. */
export const cliCommand = (args: ReadonlyArray<string>): ReadonlyArray<string> => [
  process.execPath,
  "--import",
  pathToFileURL(Path.join(root, "node_modules/tsx/dist/loader.mjs")).href,
  Path.join(root, "src/bin.ts"),
  ...args
]

export interface CliRun {
  readonly child: ChildProcess.ChildProcess
  /** Everything written so far. */
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

/** Starts `effect-qemu ARGS`; SIGKILLed on release if still running. */
export const startCli = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const exit = yield* Deferred.make<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>()
    const [node, ...rest] = cliCommand(args)
    let stdout = ""
    let stderr = ""
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => ChildProcess.spawn(node, rest, { stdio: ["ignore", "pipe", "pipe"] })),
      (child) =>
        Effect.suspend(() => {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
          return Deferred.await(exit)
        })
    )
    child.stdout!.on("data", (chunk) => stdout += chunk)
    child.stderr!.on("data", (chunk) => stderr += chunk)
    child.once("exit", (code, signal) => Deferred.unsafeDone(exit, Effect.succeed({ code, signal })))
    const run: CliRun = { child, stdout: () => stdout, stderr: () => stderr, exited: Deferred.await(exit) }
    return run
  })

/** Runs `effect-qemu ARGS` to its end. */
export const runCli = (args: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    const run = yield* startCli(args)
    const { code } = yield* run.exited
    return { code, stdout: run.stdout(), stderr: run.stderr() }
  }))

/** Polls `read` until `pattern` matches what it returns; dies with the last text after `seconds`. */
export const eventually = (read: () => string, pattern: RegExp, seconds = 120) =>
  Effect.suspend(() => {
    const text = read()
    return pattern.test(text) ? Effect.succeed(text) : Effect.fail(text)
  }).pipe(
    Effect.retry({ times: seconds * 10, schedule: Schedule.spaced("100 millis") }),
    Effect.catchAll((text) => Effect.dieMessage(`expected ${pattern} within ${seconds} s; got:\n${text}`))
  )

/** Strips ANSI escapes, for output a terminal would show styled. */
export const plain = (text: string): string => text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "")

/**
 * A QEMU started by hand with `-qmp unix:SOCKET,server=on,wait=off` (what a user's script or
 * libvirt leaves running), once its socket exists; with `secondMonitor`, a second QMP monitor there; SIGKILLed and awaited on release.
 */
export const handStartedQemu = (socket: string, options: { readonly secondMonitor?: string } = {}) =>
  Effect.gen(function*() {
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        ChildProcess.spawn(qemuBinary, [
          "-M",
          "none",
          "-nodefaults",
          "-display",
          "none",
          "-qmp",
          `unix:${socket},server=on,wait=off`,
          ...(options.secondMonitor === undefined ? [] : ["-qmp", `unix:${options.secondMonitor},server=on,wait=off`])
        ], { stdio: "ignore" })
      ),
      (child) =>
        Effect.async<void>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
          child.once("exit", () => resume(Effect.void))
          child.kill("SIGKILL")
        })
    )
    yield* eventually(() => Fs.existsSync(socket) ? "listening" : "", /listening/, 30)
    return child
  })

const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`

/**
 * A tmux server of its own (its socket in `dir`) running `command` in a 160x50 terminal; the pane
 * prints `EXIT=<status>` when the command ends. The server is killed on release.
 */
export const tmux = (dir: string, command: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const socket = Path.join(dir, "tmux.sock")
    const run = (...args: ReadonlyArray<string>) =>
      ChildProcess.execFileSync("tmux", ["-S", socket, ...args], { encoding: "utf8" })
    yield* Effect.acquireRelease(
      Effect.sync(() =>
        run(
          "new-session",
          "-d",
          "-x",
          "160",
          "-y",
          "50",
          `${command.map(quote).join(" ")}; echo EXIT=$?; sleep 600`
        )
      ),
      () => Effect.sync(() => run("kill-server"))
    )
    return {
      /** Types keys: tmux key names such as `Tab`, `Enter`, `C-d`, `Up`. */
      keys: (...keys: ReadonlyArray<string>) => Effect.sync(() => run("send-keys", ...keys)),
      /** Types text as it is. */
      type: (text: string) => Effect.sync(() => run("send-keys", "-l", text)),
      /** The whole pane, scrollback included. */
      screen: () => plain(run("capture-pane", "-p", "-J", "-S", "-")),
      /** The line the cursor is on. */
      cursorLine: () => {
        const y = Number(run("display-message", "-p", "#{cursor_y}").trim())
        return plain(run("capture-pane", "-p")).split("\n")[y] ?? ""
      }
    }
  })
