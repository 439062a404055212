/**
 * A minimal QMP connection over a socketpair to a QEMU child process, for the code generator and
 * its tests: the generator must run before (and without) the typed client it generates types for.
 *
 * @since 0.1.0
 * @internal
 */
import type { Scope } from "effect"
import { Data, Deferred, Duration, Effect, Exit, FiberId, Queue } from "effect"
import { spawn } from "node:child_process"
import type { Socket } from "node:net"

/**
 * What can go wrong: QEMU could not start or exited, a reply did not come in time, a line was not
 * JSON, or QEMU answered a command with an error (then `qmpClass` and `desc` say which).
 *
 * @since 0.1.0
 * @internal
 */
export class RawQmpError extends Data.TaggedError("RawQmpError")<{
  readonly reason: "Spawn" | "Exited" | "Timeout" | "Malformed" | "CommandFailed"
  readonly detail: string
  readonly qmpClass?: string
  readonly stderr: string
}> {
  get message(): string {
    const tail = this.stderr.trim()
    return `${this.reason}: ${this.detail}${tail.length > 0 ? `\nQEMU stderr: ${tail}` : ""}`
  }
}

/**
 * An event as QEMU sends it; `data` is absent for events that carry none.
 *
 * @since 0.1.0
 * @internal
 */
export interface RawEvent {
  readonly event: string
  readonly data?: unknown
  readonly timestamp: { readonly seconds: number; readonly microseconds: number }
}

/**
 * @since 0.1.0
 * @internal
 */
export interface RawQmp {
  /** The greeting's `QMP` member. */
  readonly greeting: { readonly version: unknown; readonly capabilities: ReadonlyArray<string> }
  /** Runs a command and returns the reply's `return` member. */
  readonly execute: (command: string, args?: unknown) => Effect.Effect<unknown, RawQmpError>
  readonly events: Queue.Dequeue<RawEvent>
  /** Completes when QEMU has exited. */
  readonly exited: Effect.Effect<void>
}

/**
 * @since 0.1.0
 * @internal
 */
export interface LaunchOptions {
  readonly binary: string
  /** Arguments before the monitor's; defaults to an empty machine with no devices or display. */
  readonly args?: ReadonlyArray<string> | undefined
  /** How long the greeting and each reply may take. */
  readonly timeout?: Duration.DurationInput | undefined
}

const keepStderr = 4096

/**
 * Starts QEMU with QMP on file descriptor 3, reads the greeting and negotiates capabilities.
 * Closing the scope ends QEMU: SIGTERM, then SIGKILL if it has not exited within two seconds.
 *
 * @since 0.1.0
 * @internal
 */
export const launch = (options: LaunchOptions): Effect.Effect<RawQmp, RawQmpError, Scope.Scope> =>
  Effect.gen(function*() {
    const timeout = Duration.decode(options.timeout ?? "10 seconds")
    const greeting = yield* Deferred.make<RawQmp["greeting"], RawQmpError>()
    const exited = yield* Deferred.make<void>()
    const events = yield* Queue.unbounded<RawEvent>()
    const pending = new Map<number, Deferred.Deferred<unknown, RawQmpError>>()
    let stderr = ""
    let nextId = 0
    let closed: RawQmpError | undefined

    const fail = (reason: RawQmpError["reason"], detail: string) => new RawQmpError({ reason, detail, stderr })

    // The one place that fails every waiter when the connection ends.
    const close = (error: RawQmpError): void => {
      if (closed !== undefined) return
      closed = error
      Deferred.unsafeDone(greeting, Exit.fail(error))
      for (const deferred of pending.values()) Deferred.unsafeDone(deferred, Exit.fail(error))
      pending.clear()
    }

    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(options.binary, [
          ...(options.args ?? ["-M", "none", "-nodefaults", "-display", "none"]),
          "-chardev",
          "socket,id=mon,fd=3",
          "-mon",
          "chardev=mon,mode=control"
        ], { stdio: ["ignore", "pipe", "pipe", "pipe"] })
      ),
      (child) =>
        Effect.gen(function*() {
          if (child.exitCode !== null || child.signalCode !== null) return
          child.kill("SIGTERM")
          const gone = yield* Deferred.await(exited).pipe(
            Effect.interruptible,
            Effect.timeout("2 seconds"),
            Effect.option
          )
          if (gone._tag === "None") {
            yield* Effect.logWarning(`QEMU (pid ${child.pid}) ignored SIGTERM; sending SIGKILL`)
            child.kill("SIGKILL")
            yield* Deferred.await(exited).pipe(Effect.interruptible, Effect.timeout("2 seconds"), Effect.ignore)
          }
        })
    )

    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-keepStderr)
    })
    child.stdout?.resume()
    child.on("error", (error) => close(fail("Spawn", error.message)))
    child.on("exit", (code, signal) => {
      close(fail("Exited", `QEMU exited (${signal ?? `code ${code}`})`))
      Deferred.unsafeDone(exited, Exit.void)
    })

    const socket = child.stdio[3] as Socket
    let buffer = ""
    socket.on("error", (error) => close(fail("Exited", `monitor socket: ${error.message}`)))
    socket.on("data", (chunk: Buffer) => {
      buffer += chunk.toString("utf8")
      for (let end = buffer.indexOf("\n"); end >= 0; end = buffer.indexOf("\n")) {
        const line = buffer.slice(0, end).trim()
        buffer = buffer.slice(end + 1)
        if (line.length === 0) continue
        let message: any
        try {
          message = JSON.parse(line)
        } catch {
          close(fail("Malformed", `not JSON: ${line.slice(0, 200)}`))
          return
        }
        if (message.QMP !== undefined) {
          Deferred.unsafeDone(greeting, Exit.succeed(message.QMP))
        } else if (typeof message.event === "string") {
          Queue.unsafeOffer(events, message as RawEvent)
        } else if (typeof message.id === "number" && pending.has(message.id)) {
          const deferred = pending.get(message.id)!
          pending.delete(message.id)
          Deferred.unsafeDone(
            deferred,
            message.error !== undefined
              ? Exit.fail(
                new RawQmpError({
                  reason: "CommandFailed",
                  detail: String(message.error.desc),
                  qmpClass: String(message.error.class),
                  stderr
                })
              )
              : Exit.succeed(message.return)
          )
        }
      }
    })

    const execute = (command: string, args?: unknown): Effect.Effect<unknown, RawQmpError> =>
      Effect.suspend(() => {
        if (closed !== undefined) return Effect.fail(closed)
        const id = nextId++
        const deferred = Deferred.unsafeMake<unknown, RawQmpError>(FiberId.none)
        pending.set(id, deferred)
        socket.write(
          `${
            JSON.stringify(args === undefined ? { execute: command, id } : { execute: command, arguments: args, id })
          }\n`
        )
        return Deferred.await(deferred).pipe(
          Effect.timeoutFail({
            duration: timeout,
            onTimeout: () => fail("Timeout", `no reply to ${command} within ${Duration.format(timeout)}`)
          }),
          Effect.ensuring(Effect.sync(() => pending.delete(id)))
        )
      })

    const hello = yield* Deferred.await(greeting).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => fail("Timeout", `no QMP greeting within ${Duration.format(timeout)}`)
      })
    )
    yield* execute("qmp_capabilities")
    return { greeting: hello, execute, events, exited: Deferred.await(exited) }
  })
