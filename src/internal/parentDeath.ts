/**
 * Tying QEMU's life to ours: on Linux, `setpriv --pdeathsig KILL --` (util-linux) sets
 * PR_SET_PDEATHSIG before exec'ing QEMU, so the kernel SIGKILLs QEMU when the thread that
 * spawned it dies, even if this process is SIGKILLed and runs no finalizer.
 *
 * The signal follows the spawning *thread*, not the process: spawn from Node's main thread
 * (where Effect fibers run). A QEMU spawned from a `worker_threads` Worker is killed when that
 * Worker ends, though this process lives on.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import { globalValue } from "effect/GlobalValue"
import { execFile } from "node:child_process"
import { accessSync, constants, readFileSync, statSync } from "node:fs"
import * as Path from "node:path"
import { withHotSpan } from "./tracing.js"

/**
 * Whether QEMU can be made to die with us: the argv prefix to put before `qemu-system-*`
 * (empty when not), and when not, why.
 *
 * @since 0.1.0
 * @category models
 */
export type ParentDeathWrapper =
  | {
    readonly _tag: "Available"
    readonly prefix: ReadonlyArray<string>
    readonly setpriv: string
  }
  | {
    readonly _tag: "Unavailable"
    readonly prefix: ReadonlyArray<string>
    readonly reason: string
  }

const unavailable = (reason: string): ParentDeathWrapper => ({ _tag: "Unavailable", prefix: [], reason })

const findOnPath = (name: string, searchPath: string): string | undefined => {
  for (const dir of searchPath.split(Path.delimiter)) {
    if (dir.length === 0) continue
    const candidate = Path.join(dir, name)
    try {
      accessSync(candidate, constants.X_OK)
      if (statSync(candidate).isFile()) return candidate
    } catch {
      // not here; try the next directory
    }
  }
  return undefined
}

// `--pdeathsig` came with util-linux 2.33; older setpriv would refuse the whole command line.
const helpText = (setpriv: string): Effect.Effect<string> =>
  Effect.async<string>((resume) => {
    const child = execFile(setpriv, ["--help"], { timeout: 2000, killSignal: "SIGKILL" }, (_error, stdout) =>
      resume(Effect.succeed(String(stdout))))
    return Effect.sync(() => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL")
      }
    })
  })

const mentionsPdeathsig = (path: string): boolean => {
  try {
    const stat = statSync(path)
    return stat.size <= 4 * 1024 * 1024 && readFileSync(path).includes("--pdeathsig")
  } catch {
    return false
  }
}

/**
 * Looks for a `setpriv` that supports `--pdeathsig` on `path` (default `$PATH`), every time it
 * is run. Most callers want the cached {@link parentDeathWrapper}.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolveParentDeathWrapper = (options?: {
  readonly path?: string
  readonly platform?: NodeJS.Platform
}): Effect.Effect<ParentDeathWrapper> =>
  Effect.suspend(() => {
    const platform = options?.platform ?? process.platform
    if (platform !== "linux") {
      return Effect.succeed(unavailable(`PR_SET_PDEATHSIG exists only on Linux, not ${platform}`))
    }
    const setpriv = findOnPath("setpriv", options?.path ?? process.env.PATH ?? "")
    if (setpriv === undefined) {
      return Effect.succeed(
        unavailable("setpriv was not found on PATH; install util-linux (Debian: apt-get install util-linux)")
      )
    }
    // The option's name is in the program's own text (its help and option table): found there,
    // no process is started for the check, which a process's first launch would wait for.
    if (mentionsPdeathsig(setpriv)) {
      return Effect.succeed<ParentDeathWrapper>({
        _tag: "Available",
        prefix: [setpriv, "--pdeathsig", "KILL", "--"],
        setpriv
      })
    }
    return helpText(setpriv).pipe(
      Effect.map((help): ParentDeathWrapper =>
        help.includes("--pdeathsig")
          ? { _tag: "Available", prefix: [setpriv, "--pdeathsig", "KILL", "--"], setpriv }
          : unavailable(`${setpriv} does not support --pdeathsig; util-linux 2.33 or newer is needed`)
      )
    )
  }).pipe(withHotSpan("parentDeath.resolve", {}))

/**
 * {@link resolveParentDeathWrapper} on `$PATH`, resolved once per process and cached.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * import * as Effect from "effect/Effect"
 * import { parentDeathWrapper } from "effect-qemu/internal/parentDeath"
 *
 * const argv = Effect.map(parentDeathWrapper, (w) => [...w.prefix, "qemu-system-x86_64", "-S"])
 */
export const parentDeathWrapper: Effect.Effect<ParentDeathWrapper> = globalValue(
  Symbol.for("effect-qemu/internal/parentDeath/parentDeathWrapper"),
  () => Effect.runSync(Effect.cached(resolveParentDeathWrapper()))
)
