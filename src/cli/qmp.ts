/**
 * `effect-qemu qmp`: an interactive shell to a running QEMU's monitor, in the manner of QEMU's
 * `qmp-shell`.
 *
 * ```sh
 * effect-qemu qmp --address unix:/run/vm/qmp.sock [--history ~/.effect-qemu-history]
 * (QEMU) query-status
 * (QEMU) blockdev-add driver=null-co node-name=n0 size=1048576
 * (QEMU) {"execute": "query-block"}
 * ```
 *
 * A line is `command name=value ...` (values read as JSON when they are JSON, as text otherwise;
 * `a.b=1` builds nested objects) or a whole JSON request. Tab completes command names from the
 * live schema and then argument names. Replies and events print as indented JSON, events as they
 * come. `quit`, `exit` or Ctrl-D leave the shell and QEMU keeps running (send
 * `{"execute": "quit"}` to stop it); Ctrl-C clears the line, or leaves on an empty one.
 *
 * @since 0.2.0
 */
import { Command, Options } from "@effect/cli"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Readline from "node:readline"
import { parseAddress } from "../codegen/Probe.js"
import * as Qmp from "../Qmp.js"
import { type Catalog, catalogFromCommands, catalogFromSchema, completer, parseLine, pretty } from "./qmpInput.js"
import type { Request } from "./qmpInput.js"
import { UsageError } from "./UsageError.js"

/**
 * The options of `effect-qemu qmp`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ShellOptions {
  readonly address: string
  readonly history: Option.Option<string>
}

const options = {
  address: Options.text("address").pipe(
    Options.withPseudoName("unix:PATH|tcp:HOST:PORT"),
    Options.withDescription("The monitor of a running QEMU: unix:PATH or tcp:HOST:PORT.")
  ),
  history: Options.text("history").pipe(
    Options.withPseudoName("FILE"),
    Options.withDescription("A file to load the command history from and save it to."),
    Options.optional
  )
}

const historySize = 1000

/** The completion names: from `query-qmp-schema`, else `query-commands`, else none. */
const loadCatalog = (client: Qmp.QmpClient): Effect.Effect<Catalog> => {
  const ask = (command: string, read: (value: unknown) => Catalog) =>
    client.raw(command).pipe(
      Effect.flatMap((reply) => "return" in reply ? Effect.succeed(read(reply.return)) : Effect.fail(reply.error))
    )
  return ask("query-qmp-schema", catalogFromSchema).pipe(
    Effect.orElse(() => ask("query-commands", catalogFromCommands)),
    Effect.orElseSucceed((): Catalog => ({ commands: [], argumentsOf: new Map() }))
  )
}

const readHistory = (file: Option.Option<string>): Array<string> =>
  Option.match(file, {
    onNone: () => [],
    onSome: (path) => {
      try {
        return Fs.readFileSync(path, "utf8").split("\n").filter((line) => line !== "").slice(-historySize).reverse()
      } catch {
        return []
      }
    }
  })

const writeHistory = (file: Option.Option<string>, newestFirst: ReadonlyArray<string>) =>
  Option.match(file, {
    onNone: () => Effect.void,
    onSome: (path) =>
      Effect.try(() => Fs.writeFileSync(path, [...newestFirst].reverse().map((line) => `${line}\n`).join(""))).pipe(
        Effect.catchAll((error) => Console.error(`effect-qemu: could not save the history to ${path}: ${error.cause}`))
      )
  })

/**
 * The shell's terminal: a readline interface, the lines typed (`null` once input ends), and a way
 * to print above the prompt.
 */
interface Terminal {
  readonly rl: Readline.Interface
  readonly lines: Queue.Queue<string | null>
  /** Prints a block of text; when the shell is waiting for input, the prompt and the typed line come back under it. */
  readonly say: (text: string) => Effect.Effect<void>
  readonly setBusy: (busy: boolean) => Effect.Effect<void>
}

const createInterface = (catalog: Catalog, history: Array<string>) => {
  const tty = process.stdin.isTTY === true && process.stdout.isTTY === true
  return Readline.createInterface({
    input: process.stdin,
    output: process.stdout,
    completer: completer(catalog),
    terminal: tty,
    history,
    historySize,
    removeHistoryDuplicates: true,
    prompt: tty ? "(QEMU) " : ""
  })
}

const openTerminal = (catalog: Catalog, historyFile: Option.Option<string>) =>
  Effect.gen(function*() {
    const lines = yield* Queue.unbounded<string | null>()
    let history = readHistory(historyFile)
    const rl = yield* Effect.acquireRelease(
      Effect.sync(() => createInterface(catalog, history)),
      (rl) => Effect.zipRight(Effect.sync(() => rl.close()), Effect.suspend(() => writeHistory(historyFile, history)))
    )
    let busy = true
    rl.on("history", (newestFirst: Array<string>) => history = newestFirst)
    rl.on("line", (line) => lines.unsafeOffer(line))
    rl.on("close", () => lines.unsafeOffer(null))
    rl.on("SIGINT", () => {
      if (rl.line === "") return rl.close()
      rl.write(null, { ctrl: true, name: "e" })
      rl.write(null, { ctrl: true, name: "u" })
    })
    const terminal: Terminal = {
      rl,
      lines,
      say: (text) =>
        Effect.sync(() => {
          if (!rl.terminal || busy) return void process.stdout.write(`${text}\n`)
          process.stdout.write(`\r\x1b[K${text}\n`)
          rl.prompt(true)
        }),
      setBusy: (value) =>
        Effect.sync(() => {
          busy = value
        })
    }
    return terminal
  })

const send = (client: Qmp.QmpClient, request: Request) =>
  client.raw(request.command, request.arguments).pipe(
    Effect.map(pretty),
    Effect.catchAll((error) => Effect.succeed(`error: ${error.message}`))
  )

/** What the session has seen: whether the last request sent was QMP's `quit`. */
interface Session {
  quitSent: boolean
}

/** Reads and runs lines until the user leaves. */
const repl = (client: Qmp.QmpClient, terminal: Terminal, session: Session) =>
  Effect.gen(function*() {
    while (true) {
      yield* terminal.setBusy(false)
      terminal.rl.prompt()
      const line = yield* Queue.take(terminal.lines)
      yield* terminal.setBusy(true)
      if (line === null) return
      const input = parseLine(line)
      if (Either.isLeft(input)) {
        yield* terminal.say(`error: ${input.left}`)
        continue
      }
      if (input.right._tag === "Leave") return
      if (input.right._tag === "Blank") continue
      session.quitSent = input.right.request.command === "quit"
      yield* Effect.flatMap(send(client, input.right.request), terminal.say)
    }
  })

// The event's name first, then its data and timestamp: easier to scan in a shell than QEMU's order.
const printEvents = (client: Qmp.QmpClient, terminal: Terminal) =>
  client.events.pipe(
    Stream.runForEach(({ data, event, timestamp, ...rest }) =>
      terminal.say(pretty({ event, data, timestamp, ...rest }))
    )
  )

/** Prints why the connection ended and sets the exit status: 0 after a `quit` the user sent. */
const connectionEnded = (reason: string, quitSent: boolean) =>
  Effect.zipRight(
    Console.error(`effect-qemu: ${reason}`),
    Effect.sync(() => {
      process.exitCode = quitSent ? 0 : 1
    })
  )

/**
 * Connects to the monitor at `options.address` and runs the shell until the user leaves or the
 * connection ends. QEMU is left running.
 *
 * @since 0.2.0
 * @category constructors
 */
export const shell = (options: ShellOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const address = yield* Either.mapLeft(parseAddress(options.address), (detail) => new UsageError({ detail }))
    const client = yield* Qmp.make(address, { name: "effect-qemu qmp" })
    const catalog = yield* loadCatalog(client)
    const terminal = yield* openTerminal(catalog, options.history)
    yield* terminal.say(
      `Connected to QEMU ${client.version} at ${client.address}: ${catalog.commands.length} commands.\n` +
        `Tab completes commands and arguments; quit or Ctrl-D leaves (QEMU keeps running; {"execute": "quit"} stops it).`
    )
    yield* Effect.forkScoped(printEvents(client, terminal))
    const session: Session = { quitSent: false }
    const left = yield* Effect.raceFirst(
      repl(client, terminal, session).pipe(Effect.as(true)),
      client.closed.pipe(Effect.as(false))
    )
    if (!left) yield* connectionEnded("the monitor closed the connection", session.quitSent)
  }))

/**
 * The `qmp` command.
 *
 * @since 0.2.0
 * @category commands
 */
export const command = Command.make("qmp", options, shell).pipe(
  Command.withDescription("An interactive shell to a running QEMU's QMP monitor (like QEMU's qmp-shell).")
)
