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
      Effect.try(() => Fs.rmSync(dir, { recursive: true, force: true })).pipe(
        Effect.catchAll((error) => Effect.logWarning(`cannot remove ${dir}`, error))
      )
  )

/** Creates the machine's temp directory (0700) for the scope; removed with it. */
export const createTempDir = (config: ResolvedConfig) =>
  acquireTempDir(config.baseTempDir, config.name, (cause) =>
    new LaunchError({
      reason: "TempDirFailed",
      name: config.name,
      detail: `cannot create a temp directory in ${config.baseTempDir}: ${String(cause)}`,
      commandLine: [],
      cause
    }))
