/**
 * A machine's private temp directory, and the sweep of directories left by controllers that died
 * without cleaning up (their names carry the pid of the process that made them).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import type { ResolvedConfig } from "../MachineConfig.js"
import * as MachineConfig from "../MachineConfig.js"
import { LaunchError } from "../MachineError.js"

const swept = new Set<string>()

const processAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as { code?: string }).code === "EPERM"
  }
}

/**
 * Removes, once per base directory and process, the temp directories that controllers killed
 * without a chance to clean up left behind: ours by name, owned by this user, made by a process
 * that no longer exists. Best effort: what cannot be removed stays.
 */
const sweepOrphans = (baseTempDir: string) => {
  if (swept.has(baseTempDir)) return
  swept.add(baseTempDir)
  const uid = process.getuid?.()
  let entries: Array<string>
  try {
    entries = Fs.readdirSync(baseTempDir)
  } catch {
    return
  }
  for (const entry of entries) {
    const pid = MachineConfig.tempDirPattern.exec(entry)?.[1]
    if (pid === undefined || Number(pid) === process.pid || processAlive(Number(pid))) continue
    const path = Path.join(baseTempDir, entry)
    try {
      const stat = Fs.lstatSync(path)
      if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid)) continue
      Fs.rmSync(path, { recursive: true, force: true })
    } catch {
      // someone else's, or gone meanwhile
    }
  }
}

/**
 * Removes a machine's directory: its entries are files and sockets, so one listing, an unlink
 * each and the rmdir do; anything else (a directory a caller made there) falls back to the
 * recursive removal, which checks every entry first.
 */
const removeDir = (dir: string): void => {
  try {
    for (const entry of Fs.readdirSync(dir)) Fs.unlinkSync(Path.join(dir, entry))
    Fs.rmdirSync(dir)
  } catch {
    Fs.rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Creates a private temp directory (0700) in `baseTempDir` for the scope, named after `name` and
 * this process (so that the sweep can recognise it once this process is gone); removed with the
 * scope. `onError` turns a failure to create it into the caller's error.
 */
export const acquireTempDir = <E>(baseTempDir: string, name: string, onError: (cause: unknown) => E) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        sweepOrphans(baseTempDir)
        return Fs.mkdtempSync(Path.join(baseTempDir, MachineConfig.tempDirPrefix(name)))
      },
      catch: onError
    }),
    (dir) =>
      Effect.try(() => removeDir(dir)).pipe(
        Effect.catchAll((error) => Effect.logWarning(`cannot remove ${dir}`, error))
      )
  )

const tempDirFailed = (config: ResolvedConfig, cause: unknown) =>
  new LaunchError({
    reason: "TempDirFailed",
    name: config.name,
    detail: `cannot create a temp directory in ${config.baseTempDir}: ${String(cause)}`,
    commandLine: [],
    cause
  })

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
const suffix = () => Array.from({ length: 6 }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join("")

/**
 * A machine's private directory (mode 0700), created only when something needs it: a directory
 * costs a few milliseconds to create and remove on this kind of file system, and most machines
 * never use theirs. Its path is fixed from the start; `ensure` creates it, and once the machine
 * is released it is removed (if it was created) and never created again.
 */
export class MachineDir {
  private created = false
  private released = false
  path: string

  constructor(private readonly config: ResolvedConfig) {
    this.path = this.pick()
  }

  private pick(): string {
    return Path.join(this.config.baseTempDir, `${MachineConfig.tempDirPrefix(this.config.name)}${suffix()}`)
  }

  /** Creates the directory now if it does not exist yet; throws what the file system said. */
  ensure(): string {
    if (this.created || this.released) return this.path
    sweepOrphans(this.config.baseTempDir)
    for (let attempt = 0;; attempt++) {
      try {
        Fs.mkdirSync(this.path, { mode: 0o700 })
        this.created = true
        return this.path
      } catch (error) {
        if ((error as { code?: string }).code !== "EEXIST" || attempt >= 8) throw error
        this.path = this.pick()
      }
    }
  }

  /** {@link ensure} as an effect, failing with `LaunchError` (reason `TempDirFailed`). */
  readonly ensureEffect = Effect.try({ try: () => this.ensure(), catch: (cause) => tempDirFailed(this.config, cause) })

  readonly release: Effect.Effect<void> = Effect.suspend(() => {
    this.released = true
    if (!this.created) return Effect.void
    return Effect.try(() => removeDir(this.path)).pipe(
      Effect.catchAll((error) => Effect.logWarning(`cannot remove ${this.path}`, error))
    )
  })
}

/** The machine's directory for the scope, created when needed; removed with the scope. */
export const machineDir = (config: ResolvedConfig) =>
  Effect.acquireRelease(Effect.sync(() => new MachineDir(config)), (dir) => dir.release)

interface SharedLogDir {
  readonly path: string
  users: number
}

const logDirs = new Map<string, SharedLogDir>()
let logCounter = 0

/**
 * A log file path for QEMU's stdout and stderr, in a directory (mode 0700) that every machine of
 * this process with the same base directory shares while any of them runs: a fleet creates one
 * directory, not one per machine. The file is removed on release (its tail is kept by then), the
 * directory with its last user.
 */
export const logFile = (config: ResolvedConfig) =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        let dir = logDirs.get(config.baseTempDir)
        if (dir === undefined) {
          sweepOrphans(config.baseTempDir)
          const path = Fs.mkdtempSync(Path.join(config.baseTempDir, MachineConfig.tempDirPrefix("logs")))
          dir = { path, users: 0 }
          logDirs.set(config.baseTempDir, dir)
        }
        dir.users++
        return { dir, path: Path.join(dir.path, `${config.name}-${++logCounter}.log`) }
      },
      catch: (cause) => tempDirFailed(config, cause)
    }),
    ({ dir, path }) =>
      Effect.sync(() => {
        try {
          Fs.unlinkSync(path)
        } catch {
          // never created (the launch failed before the spawn), or removed by someone else
        }
        if (--dir.users > 0) return
        if (logDirs.get(config.baseTempDir) === dir) logDirs.delete(config.baseTempDir)
        try {
          removeDir(dir.path)
        } catch {
          // removed by someone else
        }
      })
  )
