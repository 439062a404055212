/**
 * A shell on the console: run a command in the guest and get its exit code and output.
 *
 * Works with any POSIX shell the serial console reaches (busybox `sh`, `bash`, `dash`). Each command
 * is sent as one line that prints a start marker, runs the command through `eval` and prints an end
 * marker with `$?` (`command eval`, so that a syntax error in the command fails only the command,
 * with status 2, as in any POSIX shell). The markers are printed by `printf` from two quoted halves, so the terminal's
 * echo of the line (which shows the halves apart) never matches them: the command's own echo, the
 * prompt, busybox's `ESC[6n` after it and the `\r\r\n` wraps of a long echoed line all come before
 * the start marker and are skipped.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { ConsoleService, WaitForError, WaitForOptions } from "./Console.js"
import { ConsoleError, ConsoleTimeout } from "./ConsoleError.js"
import { printable } from "./internal/lineDecoder.js"
import { decodeTimeout } from "./internal/timer.js"

/**
 * What a command gave back: its exit status and its output (stdout and stderr, as the terminal
 * shows them), with "\r\n" turned into "\n" and, unless `stripAnsi: false`, terminal escape
 * sequences removed. The output ends with "\n" exactly when the command's output did.
 *
 * @since 0.1.0
 * @category models
 */
export interface CommandResult {
  readonly exitCode: number
  readonly stdout: string
}

/**
 * Options of a shell, and of each `run` (which override the shell's):
 *
 * - `timeout`: how long a command may take; default 30 seconds.
 * - `stripAnsi`: remove terminal escape sequences (colours, cursor queries) from the output; default true.
 * - `failOn`: console patterns that fail the command at once with `ConsoleFailureMatched`
 *   (e.g. `["Kernel panic"]`).
 *
 * @since 0.1.0
 * @category models
 */
export interface ShellOptions {
  readonly timeout?: Duration.DurationInput
  readonly stripAnsi?: boolean
  readonly failOn?: ReadonlyArray<string | RegExp>
}

/**
 * A command did not finish in time. `started` says whether the shell began it at all (a shell that
 * is not there, or still busy with an earlier command, never prints the start marker); `seen` is
 * the output the command printed so far, or, when it never started, the tail of the console.
 * The command may still be running: `interrupt` sends Ctrl-C.
 *
 * @since 0.1.0
 * @category errors
 */
export class ShellTimeout extends Data.TaggedError("ShellTimeout")<{
  readonly command: string
  readonly timeout: Duration.Duration
  readonly started: boolean
  readonly seen: string
}> {
  /**
   * @since 0.1.0
   */
  override get message(): string {
    const what = this.started ? "did not finish" : "did not start"
    const seen = this.seen.length === 0
      ? "  (nothing)"
      : this.seen.split("\n").slice(-20).map((line) => `  | ${printable(line.replace(/\r+$/, ""))}`).join("\n")
    return `command ${printable(JSON.stringify(this.command))} ${what} within ${Duration.format(this.timeout)}; ` +
      `seen so far:\n${seen}`
  }
}

/**
 * What running a command can fail with.
 *
 * @since 0.1.0
 * @category models
 */
export type ShellError = ShellTimeout | Exclude<WaitForError, ConsoleTimeout> | ConsoleError

/**
 * A shell reached through a console.
 *
 * @since 0.1.0
 * @category models
 */
export interface Shell {
  /**
   * Runs `command` (one line; anything `eval` accepts: pipes, `&&`, `cd`, variables persist) and
   * waits for its exit status. A command that does not exit in time fails with `ShellTimeout`.
   * The console's main cursor moves past the command's output.
   */
  readonly run: (command: string, options?: ShellOptions) => Effect.Effect<CommandResult, ShellError>
  /**
   * Starts `command` and waits for `pattern` in what it prints, never in its echo; for commands
   * that do not return (`reboot -f`, a server) or whose effect shows later. Returns the match.
   * QEMU's functional tests call this `exec_command_and_wait_for_pattern`.
   */
  readonly execAndWaitFor: {
    (command: string, pattern: string, options?: WaitForOptions): Effect.Effect<string, ShellError>
    (command: string, pattern: RegExp, options?: WaitForOptions): Effect.Effect<RegExpExecArray, ShellError>
  }
  /**
   * Waits until the shell answers: asks every second (input typed before the shell is up may be
   * lost), within `timeout` (default 30 seconds). Use it once after boot or login.
   */
  readonly sync: (options?: { readonly timeout?: Duration.DurationInput }) => Effect.Effect<void, ShellError>
  /** Sends Ctrl-C: ends the command in the foreground (e.g. after a `ShellTimeout`). */
  readonly interrupt: Effect.Effect<void, ShellError>
}

const defaultTimeout = Duration.seconds(30)
/** Busybox's line editor keeps at most 1024 bytes of a line (CONFIG_FEATURE_EDITING_MAX_LEN). */
const maxLineBytes = 1000
/** Keys that end or edit a line, or that the terminal would act on: not allowed inside a command. */
const controlCharacters = /[\u0000-\u0008\u000a-\u001f\u007f]/

/** CSI (`ESC [ ... final`), OSC (`ESC ] ... BEL` or `ESC \`), and two-byte escapes. */
const ansiSequences = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g

/**
 * Removes terminal escape sequences: colours, cursor movement, busybox's `ESC[6n`.
 *
 * @since 0.1.0
 * @category combinators
 */
export const stripAnsi = (text: string): string => text.replace(ansiSequences, "")

const quote = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

let serial = 0
const nextId = () => `${Math.random().toString(36).slice(2, 8)}${(serial++).toString(36)}`

const invalid = (detail: string) => new ConsoleError({ reason: "InvalidOption", detail })

const checkCommand = (command: unknown): ConsoleError | undefined => {
  if (typeof command !== "string") return invalid(`shell command: expected a string, got ${typeof command}`)
  if (controlCharacters.test(command)) {
    return invalid(
      `shell command: ${
        printable(JSON.stringify(command.slice(0, 60)))
      } holds a newline or control character; join lines with ";" or write a script file`
    )
  }
  return undefined
}

/** The lines (without Enter) that print `start`, run `command`, and, with `end`, print `end` and `$?`. */
const commandLine = (command: string, start: string, end: string | undefined): string => {
  const half = (marker: string) => `'${marker.slice(0, 4)}' '${marker.slice(4)}'`
  const printEnd = end === undefined ? "" : `; printf '%s%s%d\\n' ${half(end)} "$?"`
  // `command eval`: a syntax error in the command fails eval (status 2) instead of the whole line
  return `printf '%s%s\\n' ${half(start)}; command eval ${quote(command)}${printEnd}`
}

/** The output after the start marker in a console tail, or the whole tail when the marker is not in it. */
const seenAfter = (recent: string, start: string) => {
  const at = recent.lastIndexOf(start)
  return at === -1 ? recent : recent.slice(at + start.length).replace(/^\r*\n/, "")
}

/**
 * A shell on `console`. Nothing is sent until a command runs; the shell must be at its prompt by
 * then (after boot, `sync` waits until it answers; {@link login} gets past a `login:` prompt).
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Machine, Shell } from "effect-qemu"
 *
 * const program = Effect.gen(function*() {
 *   const vm = yield* Machine.make({ args: ["-kernel", "bzImage", "-append", "console=ttyS0"], console: {} })
 *   const shell = Shell.fromConsole(vm.console)
 *   yield* shell.sync({ timeout: "60 seconds" })
 *   const { exitCode, stdout } = yield* shell.run("uname -r")
 * }).pipe(Effect.scoped)
 * ```
 */
export const fromConsole = (console: ConsoleService, defaults: ShellOptions = {}): Shell => {
  const send = (line: string) =>
    Buffer.byteLength(line) > maxLineBytes
      ? Effect.fail(invalid(`shell command: the line to send is over ${maxLineBytes} bytes; write a script file`))
      : console.write(`${line}\r`).pipe(
        Effect.catchTag("ConsoleTimeout", (error) => Effect.fail(invalid(`shell: ${error.message}`)))
      )

  const budget = (input: Duration.DurationInput | undefined) =>
    input === undefined
      ? Either.right(defaultTimeout)
      : Either.mapLeft(decodeTimeout(input), (sentence) => invalid(`shell timeout: ${sentence}`))

  const timedOut =
    (command: string, timeout: Duration.Duration, start: string, started: boolean) => (error: ConsoleTimeout) =>
      new ShellTimeout({ command, timeout, started, seen: seenAfter(error.recent, start) })

  /**
   * Sends the line for `command` and waits until the shell has printed its start marker: what
   * precedes it (prompt, echo) is skipped. `failOn` is not applied here, as the echo holds the
   * command's text. Returns what is left of the budget.
   */
  const begin = (command: string, end: string | undefined, timeout: Duration.Duration) => {
    const start = `:EQS${nextId()}:`
    const deadline = Date.now() + Duration.toMillis(timeout)
    return send(commandLine(command, start, end)).pipe(
      Effect.zipRight(console.waitFor(new RegExp(`${escapeRegExp(start)}\\r*\\n`), { since: "now", timeout })),
      Effect.catchTag("ConsoleTimeout", (error) => Effect.fail(timedOut(command, timeout, start, false)(error))),
      Effect.as({
        start,
        remaining: () => Duration.isFinite(timeout) ? Duration.millis(Math.max(1, deadline - Date.now())) : timeout
      })
    )
  }

  /**
   * Checks the command and its timeout, sends it, and waits for `pattern` after its start marker
   * within what is left of the budget; a timeout says what the shell printed meanwhile.
   */
  const sendAndWait = (
    command: string,
    end: string | undefined,
    timeoutInput: Duration.DurationInput | undefined,
    pattern: (end: string | undefined) => string | RegExp,
    waitOptions: Omit<WaitForOptions, "timeout" | "since"> | undefined
  ) =>
    Effect.suspend(() => {
      const bad = checkCommand(command)
      if (bad !== undefined) return Effect.fail(bad)
      const timeout = budget(timeoutInput ?? defaults.timeout)
      if (Either.isLeft(timeout)) return Effect.fail(timeout.left)
      return begin(command, end, timeout.right).pipe(
        Effect.flatMap(({ remaining, start }) =>
          console.waitFor(pattern(end), {
            ...waitOptions,
            since: "cursor",
            timeout: remaining(),
            failOn: waitOptions?.failOn ?? defaults.failOn ?? []
          }).pipe(
            Effect.catchTag("ConsoleTimeout", (error) =>
              Effect.fail(timedOut(command, timeout.right, start, true)(error)))
          )
        )
      )
    })

  // Markers are fresh each time the effect runs, so a retried command never matches an old one.
  const run = (command: string, options?: ShellOptions) =>
    Effect.suspend(() => {
      const end = `:EQE${nextId()}:`
      const strip = options?.stripAnsi ?? defaults.stripAnsi ?? true
      // from the cursor, just past the start marker: the output, then the end marker and the status
      const result = new RegExp(`([\\s\\S]*?)${escapeRegExp(end)}(\\d+)\\r*\\n`)
      return sendAndWait(command, end, options?.timeout, () =>
        result, options?.failOn === undefined ? undefined : { failOn: options.failOn }).pipe(
          Effect.map((match): CommandResult => {
            const output = match[1].replace(/\r+\n/g, "\n")
            return { exitCode: Number(match[2]), stdout: strip ? stripAnsi(output) : output }
          }),
          Effect.withSpan("Shell.run", { attributes: { "shell.command": command } })
        )
    })

  const execAndWaitFor = (command: string, pattern: string | RegExp, options?: WaitForOptions) =>
    sendAndWait(command, undefined, options?.timeout, () => pattern, options).pipe(
      Effect.withSpan("Shell.execAndWaitFor", { attributes: { "shell.command": command } })
    )

  const sync = (options?: { readonly timeout?: Duration.DurationInput }) =>
    Effect.suspend(() => {
      const timeout = budget(options?.timeout ?? defaults.timeout)
      if (Either.isLeft(timeout)) return Effect.fail(timeout.left)
      const id = nextId()
      const marker = `:EQR${id}:`
      const deadline = Date.now() + Duration.toMillis(timeout.right)
      const ask: Effect.Effect<void, ShellError> = send(`printf '%s%s\\n' '${marker.slice(0, 4)}' '${marker.slice(4)}'`)
        .pipe(
          Effect.zipRight(console.waitFor(marker, { since: "cursor", timeout: "1 second" })),
          Effect.asVoid,
          Effect.catchTag("ConsoleTimeout", (error) =>
            Date.now() < deadline
              ? ask
              : Effect.fail(
                new ShellTimeout({ command: "(sync)", timeout: timeout.right, started: false, seen: error.recent })
              ))
        )
      return ask.pipe(Effect.withSpan("Shell.sync"))
    })

  return {
    run,
    execAndWaitFor: execAndWaitFor as Shell["execAndWaitFor"],
    sync,
    interrupt: console.write("\u0003").pipe(
      Effect.catchTag("ConsoleTimeout", (error) => Effect.fail(invalid(`shell: ${error.message}`)))
    )
  }
}

/**
 * Options of {@link login}:
 *
 * - `user` (required) and `password` (when the guest asks for one);
 * - `loginPrompt` (default `/login: ?$/m`), `passwordPrompt` (default `/[Pp]assword: ?$/m`);
 * - `prompt`: the shell prompt that means success (default `/[#$] (\u001b\[6n)?$/`);
 * - `failOn`: patterns that mean failure (default `["Login incorrect"]` and "Kernel panic");
 * - `timeout`: for the whole login; default 60 seconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoginOptions {
  readonly user: string
  readonly password?: string
  readonly loginPrompt?: string | RegExp
  readonly passwordPrompt?: string | RegExp
  readonly prompt?: string | RegExp
  readonly failOn?: ReadonlyArray<string | RegExp>
  readonly timeout?: Duration.DurationInput
}

/**
 * Logs in at a `login:` prompt on the console: waits for the prompt, types the user name (and the
 * password when asked), and waits for the shell prompt. "Login incorrect" fails it at once with
 * `ConsoleFailureMatched`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const login = (console: ConsoleService, options: LoginOptions): Effect.Effect<void, ShellError> =>
  Effect.gen(function*() {
    for (const [field, value] of [["user", options.user], ["password", options.password]] as const) {
      if (value !== undefined && (typeof value !== "string" || controlCharacters.test(value))) {
        return yield* invalid(`login ${field}: expected a string without control characters`)
      }
    }
    const timeout = options.timeout === undefined
      ? Either.right(Duration.seconds(60))
      : Either.mapLeft(decodeTimeout(options.timeout), (sentence) => invalid(`login timeout: ${sentence}`))
    if (Either.isLeft(timeout)) return yield* timeout.left
    const deadline = Date.now() + Duration.toMillis(timeout.right)
    const remaining = () => Duration.millis(Math.max(1, deadline - Date.now()))
    const failOn = options.failOn ?? ["Login incorrect", "Kernel panic"]
    const typed = (text: string) =>
      console.write(`${text}\r`).pipe(
        Effect.catchTag("ConsoleTimeout", (error) => Effect.fail(invalid(`login: ${error.message}`)))
      )
    const asTimeout = (stage: string) => (error: ConsoleTimeout) =>
      new ShellTimeout({ command: `(login: ${stage})`, timeout: timeout.right, started: false, seen: error.recent })
    yield* console.waitFor(options.loginPrompt ?? /login: ?$/m, { timeout: remaining(), failOn }).pipe(
      Effect.catchTag("ConsoleTimeout", (error) => Effect.fail(asTimeout("waiting for the login prompt")(error)))
    )
    yield* typed(options.user)
    if (options.password !== undefined) {
      yield* console.waitFor(options.passwordPrompt ?? /[Pp]assword: ?$/m, { timeout: remaining(), failOn }).pipe(
        Effect.catchTag("ConsoleTimeout", (error) => Effect.fail(asTimeout("waiting for the password prompt")(error)))
      )
      yield* typed(options.password)
    }
    yield* console.waitFor(options.prompt ?? /[#$] (\u001b\[6n)?$/, { timeout: remaining(), failOn }).pipe(
      Effect.catchTag("ConsoleTimeout", (error) => Effect.fail(asTimeout("waiting for the shell prompt")(error)))
    )
  }).pipe(Effect.withSpan("Shell.login", { attributes: { "shell.user": options.user } }))
