/**
 * The Python baseline: QEMU's own `qemu.machine.QEMUMachine` (over `qemu.qmp`), driven by
 * `bench/python/bench_machine.py`. launch, shutdown and qmp run in one long-lived Python process
 * (as the Node implementations run in the runner's); fleet, idle-memory and launch-fresh run each
 * run in a fresh Python process that times and measures itself, so the interpreter's start-up and
 * imports are never counted.
 *
 * It runs only when `python3` can import `qemu.machine` and `qemu.qmp` from QEMU's source tree:
 * `bench/setup-python.sh` unpacks them from Debian's QEMU source package into `bench/.python`, or
 * point `BENCH_QEMU_PYTHON` at a QEMU source tree's `python/` directory. Otherwise the runner skips
 * it with a note. `BENCH_PYTHON` names the interpreter (default: the one `python3` runs, resolved
 * once, so that a slow version-manager shim is not paid per process).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { dirname, join } from "node:path"
import { createInterface, type Interface } from "node:readline"
import { fileURLToPath } from "node:url"
import type { Implementation } from "./impl.js"
import type { WorkerRequest, WorkerResult } from "./worker.js"

const benchDir = dirname(fileURLToPath(import.meta.url))
const repoRoot = benchDir.includes(`${"/"}.build${"/"}`) ? join(benchDir, "..", "..", "..") : dirname(benchDir)
const script = join(repoRoot, "bench", "python", "bench_machine.py")
const pythonPath = process.env.BENCH_QEMU_PYTHON ?? join(repoRoot, "bench", ".python")

const probe = (): { readonly python: string } | { readonly unavailable: string } => {
  try {
    const python = process.env.BENCH_PYTHON ??
      execFileSync("python3", ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).trim()
    execFileSync(python, ["-c", "import qemu.machine, qemu.qmp"], {
      env: { ...process.env, PYTHONPATH: pythonPath },
      stdio: ["ignore", "ignore", "pipe"]
    })
    return { python }
  } catch (error) {
    const detail = String((error as { stderr?: unknown }).stderr ?? error).trim().split("\n").pop()
    return {
      unavailable: `python3 with qemu.machine and qemu.qmp not found (${detail}); ` +
        `run bench/setup-python.sh or set BENCH_QEMU_PYTHON to a QEMU source tree's python/ directory`
    }
  }
}

const found = probe()
const env = { ...process.env, PYTHONPATH: pythonPath }

/** Why the Python baseline cannot run here, or `undefined` when it can. */
export const unavailable = "unavailable" in found ? found.unavailable : undefined

let server:
  | { readonly child: ChildProcess; readonly lines: Interface; readonly next: () => Promise<string> }
  | undefined

const startServer = () => {
  if (!("python" in found)) throw new Error(unavailable)
  const child = spawn(found.python, [script, "serve"], { env, stdio: ["pipe", "pipe", "inherit"] })
  const lines = createInterface({ input: child.stdout! })
  const queue: Array<string> = []
  const waiting: Array<(line: string) => void> = []
  lines.on("line", (line) => {
    const waiter = waiting.shift()
    if (waiter !== undefined) waiter(line)
    else queue.push(line)
  })
  let failed: Error | undefined
  const rejects = new Set<(error: Error) => void>()
  child.once("exit", (code) => {
    failed = new Error(`the Python benchmark process exited (${code})`)
    for (const reject of rejects) reject(failed)
  })
  const next = () =>
    new Promise<string>((resolve, reject) => {
      const line = queue.shift()
      if (line !== undefined) return resolve(line)
      if (failed !== undefined) return reject(failed)
      rejects.add(reject)
      waiting.push((got) => {
        rejects.delete(reject)
        resolve(got)
      })
    })
  return { child, lines, next }
}

const call = async (request: Record<string, unknown>): Promise<WorkerResult> => {
  if (server === undefined) {
    server = startServer()
    await server.next() // ready
  }
  server.child.stdin!.write(JSON.stringify(request) + "\n")
  const result = JSON.parse(await server.next()) as WorkerResult & { error?: string }
  if (result.error !== undefined) throw new Error(result.error)
  return result
}

const fresh = (request: WorkerRequest): Promise<WorkerResult> =>
  new Promise((resolve, reject) => {
    if (!("python" in found)) return reject(new Error(unavailable))
    const child = spawn(found.python, [script, "run", JSON.stringify(request)], {
      env,
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (out += chunk))
    child.once("error", reject)
    child.once("exit", (code) => {
      try {
        if (code !== 0) throw new Error(`python ${request.scenario} run failed: exit ${code}`)
        resolve(JSON.parse(out.trim().split("\n").pop()!) as WorkerResult)
      } catch (error) {
        reject(error)
      }
    })
  })

const python: Implementation = {
  name: "python",
  launch: async () => ({ ms: (await call({ op: "launch" })).ms }),
  shutdown: async () => ({ ms: (await call({ op: "shutdown" })).ms }),
  // `ms: null` where the legacy client cannot do it (concurrent requests): NaN, shown as "—".
  qmpRoundTrips: async ({ requests, workers }) => ({
    ms: (await call({ op: "qmp", requests, workers })).ms ?? NaN
  }),
  fleet: () => Promise.reject(new Error("runs in a fresh Python process (runFresh)")),
  consoleDrain: () => Promise.reject(new Error("not measured for Python")),
  idleMachines: () => Promise.reject(new Error("runs in a fresh Python process (runFresh)")),
  runFresh: fresh,
  skips: ["console"],
  dispose: async () => {
    server?.child.stdin!.end()
    server?.child.kill()
  }
}

export default python
