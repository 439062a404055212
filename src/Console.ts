/**
 * A VM's serial console: read what the guest prints, wait for text, type into it.
 *
 * The console runs over a connected stream socket, usually the parent's end of a socketpair handed
 * to QEMU as `-chardev socket,id=console,fd=N` with `-serial chardev:console`.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { FileHandle } from "node:fs/promises"
import * as NodeFs from "node:fs/promises"
import * as Net from "node:net"
import type { Duplex } from "node:stream"
import { ConsoleClosed, ConsoleError, ConsoleFailureMatched, ConsoleTimeout } from "./ConsoleError.js"
import { inflow } from "./internal/consoleInflow.js"
import { LineSplitter } from "./internal/consoleLines.js"
import * as ConsoleSearch from "./internal/consoleSearch.js"
import * as Metering from "./internal/metering.js"
import { RecentBytes } from "./internal/recentBytes.js"
import { awaitWithin, decodeTimeoutOr } from "./internal/timer.js"
import { withHotSpan } from "./internal/tracing.js"
import * as Transport from "./internal/transport.js"

/**
 * Where the console comes from: a socket already connected (the parent's end of a socketpair),
 * the path of a UNIX socket, or a TCP host and port (e.g. `-serial tcp:127.0.0.1:4555,server=on`) to
 * connect to, within `connectTimeout` (default 5 seconds).
 *
 * @since 0.1.0
 * @category models
 */
export type ConsoleSource =
  | { readonly socket: Duplex }
  | { readonly path: string; readonly connectTimeout?: Duration.DurationInput }
  | { readonly host: string; readonly port: number; readonly connectTimeout?: Duration.DurationInput }

/**
 * How a console is opened.
 *
 * - `drain`: read continuously in the background, whether or not anyone is reading, so a guest
 *   that prints a lot never stalls. Without it the console is read only while a `lines` stream or a
 *   `waitFor` is running, and a guest that prints with nobody reading waits for the reader.
 * - `logFile`: append everything the guest prints to this file (created with mode 0600). Implies `drain`.
 * - `bufferBytes`: how much recent output `recent`, `waitFor` and errors can see; default 64 KiB.
 * - `maxLineLength`: a longer line is emitted by `lines` in pieces of this many characters; default 64 Ki.
 * - `name`: the machine's name, for logs and spans.
 *
 * @since 0.1.0
 * @category models
 */
export type ConsoleOptions = ConsoleSource & {
  readonly name?: string
  readonly drain?: boolean
  readonly logFile?: string
  readonly bufferBytes?: number
  readonly maxLineLength?: number
}

/**
 * Where `waitFor` starts looking.
 *
 * - `"cursor"` (the default): just after the end of the previous successful match on this console,
 *   like expect. Text that arrived before the call counts, so a prompt printed a moment before
 *   `waitFor` is not missed, and a prompt already matched once is not matched again.
 * - `"now"`: only text read after the call. Without `drain`, output the guest printed while nobody was
 *   reading is still unread, so it counts as arriving after the call.
 * - `"start"`: the oldest output still buffered.
 *
 * Whatever the start, only the last `bufferBytes` of output can be searched.
 *
 * @since 0.1.0
 * @category models
 */
export type WaitForSince = "cursor" | "now" | "start"

/**
 * Options of `waitFor`:
 *
 * - `timeout`: how long to wait; default 30 seconds.
 * - `since`: where to start looking; default `"cursor"`.
 * - `failOn`: patterns that fail the wait at once with `ConsoleFailureMatched` when they match before
 *   the awaited pattern does (e.g. `["Kernel panic", /Oops: /]`), as QEMU's functional tests'
 *   `wait_for_console_pattern(test, success, failure)` does. The cursor moves past what matched.
 *
 * @since 0.1.0
 * @category models
 */
export interface WaitForOptions {
  readonly timeout?: Duration.DurationInput
  readonly since?: WaitForSince
  readonly failOn?: ReadonlyArray<string | RegExp>
}

/**
 * Options of `write`: how long the guest may take to accept the bytes; default 30 seconds.
 *
 * @since 0.1.0
 * @category models
 */
export interface WriteOptions {
  readonly timeout?: Duration.DurationInput
}

/**
 * What a `waitFor` can fail with: no match in time, the console closed, a `failOn` pattern matched,
 * or an option that is not valid (`ConsoleError` with reason `InvalidOption`).
 *
 * @since 0.1.0
 * @category models
 */
export type WaitForError = ConsoleTimeout | ConsoleClosed | ConsoleFailureMatched | ConsoleError

/**
 * Waits until the console output matches `pattern` and returns the match, moving its cursor past
 * it. A string returns itself; a regex returns its `RegExpExecArray`, whose `input` is the buffered
 * text searched and `index` the match's place in it. The search starts at the cursor but sees the
 * text before it, so `^` (with the `m` flag), `\b` and lookbehinds mean what they mean in the text.
 * A text split across reads still matches.
 *
 * @since 0.1.0
 * @category models
 */
export interface WaitFor {
  (pattern: string, options?: WaitForOptions): Effect.Effect<string, WaitForError>
  (pattern: RegExp, options?: WaitForOptions): Effect.Effect<RegExpExecArray, WaitForError>
  (pattern: string | RegExp, options?: WaitForOptions): Effect.Effect<string | RegExpExecArray, WaitForError>
}

/**
 * A reader of the console with a cursor of its own: its `waitFor` moves only its own cursor, so a
 * watcher in the background (e.g. for "Kernel panic") does not move the main cursor, nor the main
 * `waitFor` its.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConsoleReader {
  readonly waitFor: WaitFor
  /** The absolute byte offset (as `bytesRead` counts) where this reader's next search starts. */
  readonly position: Effect.Effect<number>
}

/**
 * The serial console of one VM.
 *
 * @since 0.1.0
 * @category models
 */
export interface ConsoleService {
  /**
   * Console lines, split on "\n" with trailing "\r" removed. Each run of the stream sees the lines
   * completed after it started; the stream ends when the console closes. With `drain`, a reader that
   * falls far behind loses the oldest lines instead of stalling the guest.
   */
  readonly lines: Stream.Stream<string>
  /** The recent output, up to `bufferBytes` of it, decoded as UTF-8. */
  readonly recent: Effect.Effect<string>
  /**
   * Sends text or bytes to the guest; completes once the bytes are handed to the socket. A guest
   * that does not read (paused, or not reading its UART) leaves them queued: after `timeout` the
   * write fails with `ConsoleTimeout` (operation `"write"`). The bytes stay queued and still reach
   * the guest if it reads later; `close` drops them.
   */
  readonly write: (
    data: string | Uint8Array,
    options?: WriteOptions
  ) => Effect.Effect<void, ConsoleError | ConsoleClosed | ConsoleTimeout>
  /** Waits for `pattern` from the console's main cursor; see {@link WaitFor}. */
  readonly waitFor: WaitFor
  /**
   * A reader with a cursor of its own, starting where `since` says (default `"cursor"`: where the
   * main cursor is now).
   */
  readonly reader: (options?: { readonly since?: WaitForSince }) => Effect.Effect<ConsoleReader, ConsoleError>
  /**
   * From now on reads continuously, whether or not anyone reads (as the `drain` option does), and
   * never waits for a lagging `lines` reader (it loses lines instead). Idempotent. Call it before
   * waiting for QEMU to exit: a QEMU blocked writing to a full console socket would otherwise never
   * get there. Unlike `close`, it keeps the connection, so what was written to the guest and not yet
   * taken by it still reaches it, and what the guest prints on its way down is still read.
   */
  readonly drain: Effect.Effect<void>
  /**
   * Once QEMU has exited: reads what it left in the socket until the console ends (at most 1 second,
   * in case another process still holds QEMU's end), then closes. The guest's last words end up in
   * `recent`, the log file and `lines`.
   */
  readonly drainAndClose: Effect.Effect<void>
  /**
   * Closes the console now; idempotent. Output not read yet and input the guest has not taken yet
   * are lost: to stop a machine, `drain` first and `drainAndClose` once QEMU has exited.
   */
  readonly close: Effect.Effect<void>
  /** Waits until the console ends: QEMU closed its end, the socket failed, or `close` was called. */
  readonly ended: Effect.Effect<void>
  /** How many bytes have been read from the console so far. */
  readonly bytesRead: Effect.Effect<number>
}

/**
 * The serial console service.
 *
 * @since 0.1.0
 * @category models
 */
export class Console extends Context.Tag("effect-qemu/Console")<Console, ConsoleService>() {}

const defaultBufferBytes = 64 * 1024
const defaultMaxLineLength = 64 * 1024
const defaultWaitTimeout = Duration.seconds(30)
const defaultWriteTimeout = Duration.seconds(30)
const defaultConnectTimeout = Duration.seconds(5)
/** How many lines a lagging `lines` reader may fall behind before it loses some (with `drain`) or slows the console. */
const lineBacklog = 256
/** How much output an error carries. */
const errorTailBytes = 4096
const closeTimeout = Duration.seconds(2)
/** How long `drainAndClose` waits for the end of a console whose QEMU has exited. */
const drainAndCloseTimeout = Duration.seconds(1)

const utf8 = new TextDecoder("utf-8")

/** Published after the last line, so readers of `lines` know the console ended. */
const endOfLines = null
const isLine = (line: string | typeof endOfLines): line is string => line !== endOfLines

const describe = (pattern: string | RegExp): string =>
  typeof pattern === "string" ? JSON.stringify(pattern) : String(pattern)

const invalid = (detail: string) => new ConsoleError({ reason: "InvalidOption", detail })

/** A caller's timeout, or the default; a value that is no positive duration is the caller's error. */
const timeoutOption = (
  operation: string,
  input: Duration.DurationInput | undefined,
  fallback: Duration.Duration
): Either.Either<Duration.Duration, ConsoleError> =>
  Either.mapLeft(decodeTimeoutOr(input, fallback), (sentence) => invalid(`${operation} timeout: ${sentence}`))

const sinceValues: ReadonlyArray<unknown> = ["cursor", "now", "start"]

const isPattern = (u: unknown): u is string | RegExp => typeof u === "string" || u instanceof RegExp

/** Checks what a caller passed to `waitFor`: the pattern, `since` and `failOn`. */
const checkWaitFor = (pattern: unknown, options: WaitForOptions | undefined): ConsoleError | undefined => {
  if (!isPattern(pattern)) return invalid(`waitFor pattern: expected a string or a RegExp, got ${typeof pattern}`)
  if (options?.since !== undefined && !sinceValues.includes(options.since)) {
    return invalid(`waitFor since: expected "cursor", "now" or "start", got ${JSON.stringify(String(options.since))}`)
  }
  const failOn: unknown = options?.failOn
  if (failOn !== undefined && !(Array.isArray(failOn) && failOn.every(isPattern))) {
    return invalid("waitFor failOn: expected an array of strings and RegExps")
  }
  return undefined
}

const errorText = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

const connect = (
  address: Transport.NetAddress,
  input: Duration.DurationInput | undefined
): Effect.Effect<Net.Socket, ConsoleError> => {
  const label = "path" in address ? address.path : `${address.host}:${address.port}`
  const timeout = timeoutOption("connect", input, defaultConnectTimeout)
  if (Either.isLeft(timeout)) return Effect.fail(timeout.left)
  return Effect.mapError(
    Transport.connectNet(address, timeout.right),
    (failure) => new ConsoleError({ reason: "Connect", detail: `${label}: ${failure.detail}`, cause: failure.cause })
  )
}

const openLog = (path: string): Effect.Effect<FileHandle, ConsoleError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => NodeFs.open(path, "a", 0o600),
      catch: (cause) => new ConsoleError({ reason: "LogFile", detail: `${path}: ${errorText(cause)}`, cause })
    }),
    (handle) =>
      Effect.promise(() => handle.close()).pipe(
        Effect.interruptible,
        Effect.timeout(closeTimeout),
        Effect.catchAllCause((cause) => Effect.logWarning("closing the console log failed", cause))
      )
  )

/**
 * Opens a console on a socket and keeps it for the life of the scope; on release the socket is
 * destroyed and the log file closed, within a bounded time.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Console from "effect-qemu/Console"
 *
 * const program = (socket: import("node:net").Socket) =>
 *   Effect.gen(function*() {
 *     const console = yield* Console.make({ socket, drain: true, name: "vm0" })
 *     yield* console.waitFor("login:", { timeout: "60 seconds" })
 *     yield* console.write("root\n")
 *     yield* console.waitFor(/[#$] $/)
 *   }).pipe(Effect.scoped)
 * ```
 */
export const make = (options: ConsoleOptions): Effect.Effect<ConsoleService, ConsoleError, Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? "console"
    // `lines` readers may lag and lose lines only when the console drains from the start
    const slidingLines = options.drain === true || options.logFile !== undefined
    const log = options.logFile === undefined ? undefined : yield* openLog(options.logFile)
    const open: Effect.Effect<Duplex, ConsoleError> = "socket" in options
      ? Effect.succeed(options.socket)
      : connect(
        "path" in options ? { path: options.path } : { host: options.host, port: options.port },
        options.connectTimeout
      )
    const socket = yield* Effect.acquireRelease(
      open,
      (socket) =>
        Effect.sync(() => socket.destroy()).pipe(
          Effect.catchAllDefect((defect) => Effect.logWarning("destroying the console socket failed", defect))
        )
    )
    // an `error` with no listener would crash the process; the reader sees the stream end and reports it
    let socketError: Error | undefined
    socket.on("error", (cause) => {
      socketError = cause
    })
    const recentBytes = new RecentBytes(options.bufferBytes ?? defaultBufferBytes)
    const splitter = new LineSplitter(options.maxLineLength ?? defaultMaxLineLength)
    const lineHub = yield* (slidingLines
      ? PubSub.sliding<string | typeof endOfLines>(lineBacklog)
      : PubSub.bounded<string | typeof endOfLines>(lineBacklog))
    const ended = yield* Deferred.make<void>()
    // Completed when `drain` is called: a publisher stalled on a lagging `lines` reader gives up.
    const drainStarted = yield* Deferred.make<void>()
    const state = {
      closed: false,
      linesEnded: false,
      draining: slidingLines,
      readers: 0,
      lineReaders: 0,
      wakers: new Set<() => void>(),
      endListeners: new Set<() => void>()
    }
    const reading = yield* Effect.makeLatch(state.draining)

    const wakeAll = () => {
      const wakers = [...state.wakers]
      state.wakers.clear()
      for (const wake of wakers) wake()
    }

    /** Resumes once output past `seen` exists or the console closed. */
    const awaitOutput = (seen: number) =>
      Effect.async<void>((resume) => {
        if (recentBytes.end !== seen || state.closed) return resume(Effect.void)
        const wake = () => resume(Effect.void)
        state.wakers.add(wake)
        return Effect.sync(() => state.wakers.delete(wake))
      })

    /** Someone is reading for the duration of the scope: without `drain`, that is what lets output flow. */
    const reader = Effect.acquireRelease(
      Effect.zipRight(Effect.sync(() => ++state.readers), reading.open),
      () => {
        state.readers--
        return state.readers === 0 && !state.draining ? reading.close : Effect.void
      }
    )

    const tail = () => utf8.decode(recentBytes.from(recentBytes.end - errorTailBytes))

    let logBroken = false
    // With no log file to write first and nobody cutting lines, a chunk only needs keeping in the
    // recent output: that is done as it arrives.
    const input = inflow(
      socket,
      (chunk) => {
        if ((log !== undefined && !logBroken) || state.lineReaders > 0 || (!state.draining && state.readers === 0)) {
          return false
        }
        recentBytes.append(chunk)
        return true
      },
      () => wakeAll()
    )
    const appendToLog = (chunks: ReadonlyArray<Uint8Array>): Effect.Effect<void> =>
      log === undefined ? Effect.void : Effect.tryPromise(() => log.writev(chunks as Array<Uint8Array>)).pipe(
        Effect.asVoid,
        // a failing log must not stop the draining: report it once and keep going without it
        Effect.catchAll((error) =>
          Effect.logWarning("writing the console log failed; console output is no longer logged", error.cause).pipe(
            Effect.zipRight(Effect.sync(() => {
              logBroken = true
            }))
          )
        )
      )

    /**
     * Publishes lines to `lines` readers. A bounded hub makes a lagging reader slow the console down,
     * until `drain` is called: from then on lines a reader has no room for are dropped.
     */
    const publishLines = (lines: ReadonlyArray<string | typeof endOfLines>): Effect.Effect<void> => {
      if (slidingLines) return PubSub.publishAll(lineHub, lines)
      let published = 0
      while (published < lines.length && lineHub.unsafeOffer(lines[published])) published++
      if (published === lines.length || state.draining) return Effect.void
      return Effect.asVoid(
        Effect.raceFirst(PubSub.publishAll(lineHub, lines.slice(published)), Deferred.await(drainStarted))
      )
    }

    const endReading = () => {
      state.closed = true
      wakeAll()
      const listeners = [...state.endListeners]
      state.endListeners.clear()
      for (const listener of listeners) listener()
    }

    const pump = Effect.gen(function*() {
      while (true) {
        yield* reading.await
        const batch = yield* input.take
        if (batch === null) break
        if (!logBroken) yield* appendToLog(batch)
        recentBytes.appendAll(batch)
        // Decoding costs more than all the rest: lines are cut only while someone reads them (a
        // new reader picks up the unfinished line from the recent output).
        if (state.lineReaders > 0) {
          for (const chunk of batch) {
            const lines = splitter.push(chunk)
            if (lines.length > 0) yield* publishLines(lines)
          }
        }
        wakeAll()
      }
      yield* publishLines(splitter.end())
      endReading()
      // set before the end marker goes out: a reader that sees it set takes what is queued and stops
      state.linesEnded = true
      yield* publishLines([endOfLines])
      yield* Deferred.succeed(ended, undefined)
      if (socketError === undefined) yield* Effect.logDebug("console ended")
      else yield* Effect.logWarning("console ended on a socket error", socketError)
    })
    yield* Effect.forkScoped(pump.pipe(
      Effect.catchAllDefect((defect) => Effect.logError("console reader failed", defect)),
      // however the reader stops, nobody may keep waiting for output that will never come
      Effect.ensuring(Effect.sync(() => {
        endReading()
        Deferred.unsafeDone(ended, Effect.void)
      })),
      Effect.annotateLogs("machine", name)
    ))

    const lines: Stream.Stream<string> = Stream.unwrapScoped(Effect.gen(function*() {
      const subscription = yield* PubSub.subscribe(lineHub)
      if (state.linesEnded) {
        const rest = yield* Queue.takeAll(subscription)
        return Stream.fromIterable(rest).pipe(Stream.takeWhile(isLine))
      }
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          // The first reader picks up the unfinished line from the recent output.
          if (state.lineReaders++ === 0) {
            const recent = recentBytes.from(0)
            splitter.restart(recent.subarray(recent.lastIndexOf(0x0a) + 1))
          }
        }),
        () =>
          Effect.sync(() => {
            state.lineReaders--
          })
      )
      yield* reader
      return Stream.fromQueue(subscription).pipe(
        Stream.takeWhile(isLine)
      )
    }))

    const recent = Effect.sync(() => utf8.decode(recentBytes.from(0)))

    const write = (data: string | Uint8Array, writeOptions?: WriteOptions) => {
      const timeout = timeoutOption("write", writeOptions?.timeout, defaultWriteTimeout)
      if (Either.isLeft(timeout)) return Effect.fail(timeout.left)
      if (typeof data !== "string" && !(data instanceof Uint8Array)) {
        return Effect.fail(invalid(`write data: expected a string or a Uint8Array, got ${typeof data}`))
      }
      return awaitWithin<void, ConsoleError | ConsoleClosed, ConsoleTimeout>(
        timeout.right,
        (resume) => {
          if (state.closed || socket.destroyed || !socket.writable) {
            resume(Effect.fail(new ConsoleClosed({ operation: "write", recent: tail() })))
          } else {
            Metering.consoleBytes("out", typeof data === "string" ? Buffer.byteLength(data) : data.length)
            socket.write(data, (cause) =>
              resume(
                cause
                  ? Effect.fail(new ConsoleError({ reason: "Write", detail: cause.message, cause }))
                  : Effect.void
              ))
          }
          // what the socket has queued cannot be taken back: it goes out if the guest reads later
          return () => {}
        },
        () =>
          new ConsoleTimeout({
            operation: "write",
            timeout: timeout.right,
            recent: tail(),
            pendingBytes: socket.writableLength
          })
      ).pipe(
        withHotSpan("Console.write", { "console.bytes": data.length }),
        Effect.annotateLogs("machine", name)
      )
    }

    /** A `waitFor` that searches from, and moves, `cursor`. */
    const waitOn = (cursor: { position: number }) => (pattern: string | RegExp, waitOptions?: WaitForOptions) => {
      const bad = checkWaitFor(pattern, waitOptions)
      if (bad !== undefined) return Effect.fail(bad)
      const timeout = timeoutOption("waitFor", waitOptions?.timeout, defaultWaitTimeout)
      if (Either.isLeft(timeout)) return Effect.fail(timeout.left)
      const since = waitOptions?.since ?? "cursor"
      const failOn = waitOptions?.failOn ?? []
      const patterns = [pattern, ...failOn].map(ConsoleSearch.compile)
      // where this search began, to tell how much output after it was pushed out unread
      let from = 0
      const dropped = () => Math.max(0, recentBytes.start - from)
      return Effect.gen(function*() {
        yield* reader
        from = since === "now" ? recentBytes.end : since === "start" ? recentBytes.start : cursor.position
        while (true) {
          const seen = recentBytes.end
          const found = ConsoleSearch.search(recentBytes, from, patterns)
          if (found !== undefined) {
            cursor.position = Math.max(cursor.position, Math.min(found.end, recentBytes.end))
            if (found.which === 0) return found.match
            return yield* new ConsoleFailureMatched({
              pattern: describe(pattern),
              failure: describe(failOn[found.which - 1]),
              matched: typeof found.match === "string" ? found.match : found.match[0],
              recent: tail()
            })
          }
          if (state.closed) {
            return yield* new ConsoleClosed({
              operation: "waitFor",
              pattern: describe(pattern),
              recent: tail(),
              droppedBytes: dropped()
            })
          }
          yield* awaitOutput(seen)
        }
      }).pipe(
        Effect.scoped,
        Effect.timeoutFail({
          duration: timeout.right,
          onTimeout: () =>
            new ConsoleTimeout({
              operation: "waitFor",
              pattern: describe(pattern),
              timeout: timeout.right,
              recent: tail(),
              droppedBytes: dropped()
            })
        }),
        withHotSpan("Console.waitFor", {
          "console.pattern": describe(pattern),
          "console.since": since,
          "console.timeout": Duration.format(timeout.right)
        }),
        Effect.annotateLogs("machine", name)
      )
    }

    const mainCursor = { position: 0 }

    const makeReader = (readerOptions?: { readonly since?: WaitForSince }) =>
      Effect.suspend(() => {
        const since: unknown = readerOptions?.since ?? "cursor"
        if (!sinceValues.includes(since)) {
          return Effect.fail(
            invalid(`reader since: expected "cursor", "now" or "start", got ${JSON.stringify(String(since))}`)
          )
        }
        const cursor = {
          position: since === "now" ? recentBytes.end : since === "start" ? recentBytes.start : mainCursor.position
        }
        return Effect.succeed<ConsoleReader>({
          waitFor: waitOn(cursor) as WaitFor,
          position: Effect.sync(() => cursor.position)
        })
      })

    const close = Effect.sync(() => {
      if (state.closed) return
      socket.destroy()
      endReading()
    }).pipe(
      Effect.catchAllDefect((defect) => Effect.logWarning("closing the console failed", defect)),
      Effect.annotateLogs("machine", name)
    )

    const startDraining = Effect.suspend(() => {
      if (state.draining) return Effect.void
      state.draining = true
      Deferred.unsafeDone(drainStarted, Effect.void)
      return reading.open
    })

    const drainAndClose = startDraining.pipe(
      Effect.zipRight(
        awaitWithin(
          drainAndCloseTimeout,
          (resume) => {
            const done = () => resume(Effect.void)
            if (state.closed) done()
            else state.endListeners.add(done)
            return () => state.endListeners.delete(done)
          },
          () => undefined
        ).pipe(Effect.catchAll(() => Effect.logDebug("the console did not end in time after QEMU exited; closing it")))
      ),
      Effect.zipRight(close),
      Effect.annotateLogs("machine", name)
    )

    return Console.of({
      lines,
      recent,
      ended: Deferred.await(ended),
      bytesRead: Effect.sync(() => recentBytes.end),
      write,
      waitFor: waitOn(mainCursor) as WaitFor,
      reader: makeReader,
      drain: startDraining,
      drainAndClose,
      close
    })
  })

/**
 * The console as a layer, closed when the layer is released.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: ConsoleOptions): Layer.Layer<Console, ConsoleError> =>
  Layer.scoped(Console, make(options))

/**
 * A console that does not exist: every `write` and `waitFor` fails at once with `ConsoleClosed`
 * carrying `detail` (e.g. why the machine has none); `lines` is empty and the rest do nothing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const unavailable = (detail: string): ConsoleService => {
  const waitFor = ((pattern: string | RegExp) =>
    Effect.fail(
      new ConsoleClosed({ operation: "waitFor", pattern: describe(pattern), recent: "", detail })
    )) as WaitFor
  return {
    lines: Stream.empty,
    recent: Effect.succeed(""),
    write: () => Effect.fail(new ConsoleClosed({ operation: "write", recent: "", detail })),
    waitFor,
    reader: () => Effect.succeed({ waitFor, position: Effect.succeed(0) }),
    drain: Effect.void,
    drainAndClose: Effect.void,
    close: Effect.void,
    ended: Effect.void,
    bytesRead: Effect.succeed(0)
  }
}
