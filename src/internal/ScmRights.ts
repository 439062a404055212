/**
 * Passing a file descriptor to a running QEMU over its QMP monitor socket, for `getfd` and
 * `add-fd`. Node cannot attach SCM_RIGHTS ancillary data to a write, so a small python3 program
 * (`sendFdScript`, run with `python3 -c`) inherits the monitor socket and the descriptor and
 * sends one space byte carrying it. QEMU skips whitespace between JSON messages and keeps the descriptor for
 * the next `getfd`/`add-fd` command.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { type ChildProcess, spawn } from "node:child_process"
import type * as Net from "node:net"
import { ScmRightsError } from "../QmpError.js"
import { sendFdScript } from "./sendFdScript.js"
import { withHotSpan } from "./tracing.js"

export { ScmRightsError } from "../QmpError.js"

// Slots in the helper's descriptor table; the helper is told them on its command line.
const SOCKET_SLOT = 3
const FD_SLOT = 4
const STDERR_LIMIT = 4096

// The monitor's writes must be flushed first: a space landing inside a half-written command
// would corrupt it. An empty write completes only after every write queued before it.
const flushed = (socket: Net.Socket, fd: number): Effect.Effect<void, ScmRightsError> =>
  Effect.async<void, ScmRightsError>((resume) => {
    if (socket.writableLength === 0) return resume(Effect.void)
    socket.write("", (error) =>
      resume(
        error == null ? Effect.void : Effect.fail(
          new ScmRightsError({
            reason: "InvalidArgument",
            fd,
            detail: `the socket failed while flushing earlier writes: ${error.message}`,
            cause: error
          })
        )
      ))
  })

const runHelper = (
  socket: Net.Socket,
  fd: number,
  python: string
): Effect.Effect<void, ScmRightsError> =>
  Effect.async<void, ScmRightsError>((resume) => {
    const flowing = socket.readableFlowing
    let child: ChildProcess
    try {
      child = spawn(python, ["-c", sendFdScript, String(SOCKET_SLOT), String(FD_SLOT)], {
        stdio: ["ignore", "ignore", "pipe", socket, fd]
      })
    } catch (error) {
      // Synchronous failures are about the descriptors given (EBADF for a closed fd).
      return resume(Effect.fail(
        new ScmRightsError({
          reason: "InvalidArgument",
          fd,
          detail: `cannot hand over the descriptor: ${error}`,
          cause: error
        })
      ))
    } finally {
      // spawn stops reading a socket it hands to a child; the helper never reads, so give the
      // socket back to whoever was reading it, in the state they left it.
      if (flowing === true) socket.resume()
      // Readable has a setter (spawn itself uses it); the typings only declare the getter.
      else (socket as { readableFlowing: boolean | null }).readableFlowing = flowing
    }

    let stderr = ""
    child.stderr?.setEncoding("utf8")
    child.stderr?.on("data", (chunk: string) => {
      if (stderr.length < STDERR_LIMIT) stderr += chunk
    })
    child.once("error", (error: NodeJS.ErrnoException) =>
      resume(Effect.fail(
        error.code === "ENOENT"
          ? new ScmRightsError({
            reason: "HelperMissing",
            fd,
            detail: `"${python}" was not found on PATH; install python3 (Debian: apt-get install python3)`,
            cause: error
          })
          : new ScmRightsError({
            reason: "HelperFailed",
            fd,
            detail: `could not start "${python}": ${error.message}`,
            cause: error
          })
      )))
    child.once("close", (exitCode, signal) => {
      if (exitCode === 0) return resume(Effect.void)
      resume(Effect.fail(
        new ScmRightsError({
          reason: "HelperFailed",
          fd,
          detail: signal !== null ? `helper killed by ${signal}` : `helper exited with status ${exitCode}`,
          exitCode,
          stderr
        })
      ))
    })
    // Interruption, including the timeout: the helper holds a copy of the monitor socket and
    // must not outlive the call.
    return Effect.sync(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    })
  })

/**
 * Sends `fd` over the QMP monitor connection `socket` as SCM_RIGHTS ancillary data, attached
 * to one space byte. Follow it with `getfd` (named descriptor) or `add-fd` (fd set) on the same
 * connection. The caller must not write to the socket until this completes.
 *
 * @since 0.1.0
 * @category combinators
 * @example
 * import * as Effect from "effect/Effect"
 * import { sendFd } from "effect-qemu/internal/ScmRights"
 *
 * const program = Effect.gen(function*() {
 *   yield* sendFd({ socket: monitor, fd: tapFd })
 *   yield* qmp.execute("getfd", { fdname: "tap0" })
 * })
 */
export const sendFd = (options: {
  readonly socket: Net.Socket
  readonly fd: number
  /**
   * How long the helper may take before it is killed. Default 30 seconds: it normally takes
   * tens of milliseconds, but starting python3 on a loaded machine (or through a version
   * manager's shim) can take seconds.
   */
  readonly timeout?: Duration.DurationInput
  /** The python3 interpreter to run. Default `python3` from PATH. */
  readonly python?: string
}): Effect.Effect<void, ScmRightsError> => {
  const { fd, socket } = options
  const timeout = Duration.decode(options.timeout ?? "30 seconds")
  const python = options.python ?? "python3"
  return Effect.suspend(() => {
    if (!Number.isSafeInteger(fd) || fd < 0) {
      return Effect.fail(
        new ScmRightsError({ reason: "InvalidArgument", fd, detail: "the descriptor must be an integer >= 0" })
      )
    }
    if (socket.destroyed || !socket.writable) {
      return Effect.fail(new ScmRightsError({ reason: "InvalidArgument", fd, detail: "the socket is closed" }))
    }
    return flushed(socket, fd).pipe(
      Effect.zipRight(runHelper(socket, fd, python)),
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new ScmRightsError({
            reason: "Timeout",
            fd,
            detail: `the helper did not finish within ${Duration.format(timeout)} and was killed`
          })
      })
    )
  }).pipe(withHotSpan("ScmRights.sendFd", { "fd": fd }))
}
