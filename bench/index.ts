/**
 * Benchmark runner: `npm run bench [-- --quick] [-- --only NAME]`.
 *
 * Runs every benchmark for each implementation (the bare baseline, and the library when
 * `bench/impl-library.ts` exists), alternating between implementations run by run (and reversing
 * the order every other run), then prints a table and writes `bench/results/latest.json`.
 *
 * launch, shutdown and qmp run in this process, after one discarded warm-up run per implementation.
 * fleet, console and idle-memory run each run in a fresh Node process (bench/worker.ts) so that
 * their memory figures — peak RSS from /proc/self/status VmHWM, RSS after a forced GC — belong to
 * that run and that implementation alone.
 */
import { execFileSync, fork } from "node:child_process"
import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { descendants, installCleanup, QEMU_COMM } from "./cleanup.js"
import type { Implementation, ImplementationModule } from "./impl.js"
import { ratio, summarize, type Summary } from "./stats.js"
import type { WorkerRequest, WorkerResult } from "./worker.js"

const benchDir = dirname(fileURLToPath(import.meta.url))
// From source this is the repository; compiled, bench/.build/bench sits two levels further down.
const repoRoot = benchDir.includes(`${"/"}.build${"/"}`) ? join(benchDir, "..", "..", "..") : dirname(benchDir)
const MiB = 1024 * 1024

// ---------------------------------------------------------------------------------------------
// Command line

const argv = process.argv.slice(2)
if (argv.includes("--help") || argv.includes("-h")) {
  process.stdout.write("usage: tsx bench/index.ts [--quick] [--only NAME]\n")
  process.exit(0)
}
const quick = argv.includes("--quick")
const onlyIndex = argv.indexOf("--only")
const only = onlyIndex >= 0 ? argv[onlyIndex + 1] : undefined

const config = quick
  ? {
    launchRuns: 10,
    shutdownRuns: 10,
    qmpRuns: 3,
    qmpRequests: 1000,
    qmpWorkers: 8,
    launchFreshRuns: 5,
    fleetRuns: 2,
    fleetSizes: [50, 100] as const,
    consoleRuns: 2,
    consoleBytes: 64 * MiB,
    idleRuns: 1,
    idleMachines: [10, 50] as const
  }
  : {
    launchRuns: 50,
    shutdownRuns: 50,
    qmpRuns: 5,
    qmpRequests: 5000,
    qmpWorkers: 8,
    launchFreshRuns: 12,
    fleetRuns: 8,
    fleetSizes: [50, 100] as const,
    consoleRuns: 6,
    consoleBytes: 256 * MiB,
    idleRuns: 5,
    idleMachines: [10, 50] as const
  }

// ---------------------------------------------------------------------------------------------
// Implementations

interface Loaded {
  readonly name: string
  readonly modulePath: string
  readonly impl: Implementation
}

/**
 * `npm run bench` runs the benchmarks compiled to JavaScript (bench/.build), as a user's program
 * would run the library; `tsx bench/index.ts` still works from source, at the cost of the loader's
 * memory in every process.
 */
const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js"
const loaderArgs = ext === ".ts" ? ["--import", "tsx"] : []

const load = async (file: string): Promise<Loaded> => {
  const modulePath = join(benchDir, file)
  const impl = ((await import(pathToFileURL(modulePath).href)) as ImplementationModule).default
  return { name: impl.name, modulePath, impl }
}

/**
 * Runs one scenario in a fresh process and returns what it measured: a fresh Node process
 * (bench/worker.ts), or the implementation's own kind of process when it has `runFresh`.
 */
const inWorker = (target: Loaded, request: WorkerRequest): Promise<WorkerResult> =>
  target.impl.runFresh !== undefined ? target.impl.runFresh(request) : inNodeWorker(target, request)

const inNodeWorker = (target: Loaded, request: WorkerRequest): Promise<WorkerResult> =>
  new Promise((resolve, reject) => {
    const child = fork(join(benchDir, `worker${ext}`), [target.modulePath, JSON.stringify(request)], {
      cwd: repoRoot,
      execArgv: ["--expose-gc", ...loaderArgs],
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    let result: WorkerResult | undefined
    const timer = setTimeout(() => child.kill("SIGTERM"), 180_000)
    child.on("message", (message) => {
      result = message as WorkerResult
    })
    child.on("error", reject)
    child.on("exit", (code, signal) => {
      clearTimeout(timer)
      if (result !== undefined) resolve(result)
      else reject(new Error(`${target.name} worker (${request.scenario}) failed: exit ${code ?? signal}`))
    })
  })

// ---------------------------------------------------------------------------------------------
// Benchmarks

interface Metric {
  readonly key: string
  readonly label: string
  readonly unit: string
  readonly better: "lower" | "higher"
}

interface Benchmark {
  readonly name: string
  readonly title: string
  readonly runs: number
  readonly metrics: ReadonlyArray<Metric>
  /** One discarded run per implementation before the measured ones (in-process benchmarks). */
  readonly warmup?: (target: Loaded) => Promise<unknown>
  readonly run: (target: Loaded) => Promise<Record<string, number>>
}

const rate = (requests: number, ms: number) => requests / (ms / 1000)

const benchmarks: ReadonlyArray<Benchmark> = [
  {
    name: "launch",
    title: "Launch: spawn to QMP negotiated",
    runs: config.launchRuns,
    metrics: [{ key: "ms", label: "spawn → QMP ready", unit: "ms", better: "lower" }],
    warmup: ({ impl }) => impl.launch(),
    run: async ({ impl }) => ({ ms: (await impl.launch()).ms })
  },
  {
    name: "launch-fresh",
    title: "Launch in a fresh process: spawn to QMP negotiated, the process's first machine (import done)",
    runs: config.launchFreshRuns,
    metrics: [{ key: "ms", label: "spawn → QMP ready, first launch", unit: "ms", better: "lower" }],
    run: async (target) => ({ ms: (await inWorker(target, { scenario: "launch" })).ms })
  },
  {
    name: "shutdown",
    title: "Graceful shutdown: quit sent to process reaped",
    runs: config.shutdownRuns,
    metrics: [{ key: "ms", label: "quit → exit", unit: "ms", better: "lower" }],
    warmup: ({ impl }) => impl.shutdown(),
    run: async ({ impl }) => ({ ms: (await impl.shutdown()).ms })
  },
  {
    name: "qmp",
    title: `QMP round trips: ${config.qmpRequests} query-status on one VM`,
    runs: config.qmpRuns,
    metrics: [
      { key: "sequential", label: "sequential", unit: "req/s", better: "higher" },
      { key: "concurrent", label: `${config.qmpWorkers} concurrent workers`, unit: "req/s", better: "higher" }
    ],
    warmup: async ({ impl }) => {
      await impl.qmpRoundTrips({ requests: 500, workers: 1 })
      await impl.qmpRoundTrips({ requests: 500, workers: config.qmpWorkers })
    },
    run: async ({ impl }) => {
      const requests = config.qmpRequests
      const sequential = await impl.qmpRoundTrips({ requests, workers: 1 })
      const concurrent = await impl.qmpRoundTrips({ requests, workers: config.qmpWorkers })
      return { sequential: rate(requests, sequential.ms), concurrent: rate(requests, concurrent.ms) }
    }
  },
  ...config.fleetSizes.map((machines): Benchmark => ({
    name: `fleet-${machines}`,
    title: `Fleet: ${machines} VMs launched concurrently, one query-status each, all shut down`,
    runs: config.fleetRuns,
    metrics: [
      { key: "ms", label: "wall time", unit: "ms", better: "lower" },
      { key: "cpuPerMachine", label: "controller CPU / machine", unit: "ms", better: "lower" },
      { key: "maxStall", label: "longest event-loop stall", unit: "ms", better: "lower" },
      { key: "peakRss", label: "controller peak RSS", unit: "MiB", better: "lower" },
      { key: "peakGrowth", label: "peak RSS − RSS at start", unit: "MiB", better: "lower" }
    ],
    run: async (target) => {
      const r = await inWorker(target, { scenario: "fleet", machines })
      return {
        ms: r.ms,
        cpuPerMachine: r.cpuMs / machines,
        maxStall: r.maxStallMs ?? NaN,
        peakRss: r.peakRss / MiB,
        peakGrowth: (r.peakRss - r.startRss) / MiB
      }
    }
  })),
  {
    name: "console",
    title: `Console drain: ${config.consoleBytes / MiB} MiB from a fake console peer over a UNIX socket`,
    runs: config.consoleRuns,
    metrics: [
      { key: "throughput", label: "throughput", unit: "MiB/s", better: "higher" },
      { key: "peakRss", label: "controller peak RSS", unit: "MiB", better: "lower" },
      { key: "peakGrowth", label: "peak RSS − RSS at start", unit: "MiB", better: "lower" }
    ],
    run: async (target) => {
      const r = await inWorker(target, { scenario: "console", bytes: config.consoleBytes })
      return {
        throughput: r.bytes / MiB / (r.ms / 1000),
        peakRss: r.peakRss / MiB,
        peakGrowth: (r.peakRss - r.startRss) / MiB
      }
    }
  },
  {
    name: "idle-memory",
    title: "Memory per idle machine: controller RSS growth / live idle VMs (after GC)",
    runs: config.idleRuns,
    metrics: [
      { key: "afterImport", label: "RSS after import (after GC)", unit: "MiB", better: "lower" },
      ...config.idleMachines.map((machines) => ({
        key: `perMachine${machines}`,
        label: `growth / ${machines} idle VMs`,
        unit: "KiB/VM",
        better: "lower" as const
      })),
      {
        key: "marginal",
        label: `marginal: Δgrowth / Δmachines (${config.idleMachines[0]}→${config.idleMachines[1]})`,
        unit: "KiB/VM",
        better: "lower"
      }
    ],
    run: async (target) => {
      const [small, large] = config.idleMachines
      const growth: Record<number, number> = {}
      let afterImport = NaN
      for (const machines of config.idleMachines) {
        const r = await inWorker(target, { scenario: "idle", machines })
        growth[machines] = r.rssIdle - r.rssBefore
        afterImport = r.rssBefore / MiB
      }
      return {
        afterImport,
        [`perMachine${small}`]: growth[small] / small / 1024,
        [`perMachine${large}`]: growth[large] / large / 1024,
        marginal: (growth[large] - growth[small]) / (large - small) / 1024
      }
    }
  }
]

// ---------------------------------------------------------------------------------------------
// Running

interface MetricResult extends Metric {
  readonly results: Record<string, Summary & { readonly samples: ReadonlyArray<number> }>
  /** Each implementation's median over the baseline's (null where either is missing). */
  readonly ratios: Record<string, number | null>
}

interface BenchmarkResult {
  readonly name: string
  readonly title: string
  readonly runs: number
  readonly metrics: ReadonlyArray<MetricResult>
}

const runBenchmark = async (bench: Benchmark, all: ReadonlyArray<Loaded>): Promise<BenchmarkResult> => {
  const targets = all.filter((t) => !(t.impl.skips ?? []).some((name) => bench.name.startsWith(name)))
  const started = performance.now()
  process.stderr.write(`▶ ${bench.name}: ${bench.title} (${bench.runs} runs × ${targets.length} impl.)\n`)
  if (bench.warmup !== undefined) {
    for (const target of targets) await bench.warmup(target)
  }
  const samples = new Map(targets.map((t) => [t.name, bench.metrics.map(() => [] as Array<number>)]))
  for (let i = 0; i < bench.runs; i++) {
    const order = i % 2 === 0 ? targets : [...targets].reverse()
    for (const target of order) {
      const sample = await bench.run(target)
      bench.metrics.forEach((metric, m) => samples.get(target.name)![m].push(sample[metric.key]))
    }
  }
  process.stderr.write(`  done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`)
  return {
    name: bench.name,
    title: bench.title,
    runs: bench.runs,
    metrics: bench.metrics.map((metric, m) => {
      const results: MetricResult["results"] = {}
      for (const target of targets) {
        const values = samples.get(target.name)![m]
        results[target.name] = { ...summarize(values.filter((x) => !Number.isNaN(x))), samples: values }
      }
      const ratios: MetricResult["ratios"] = {}
      for (const target of targets) {
        if (target.name !== "baseline") ratios[target.name] = ratio(results[target.name], results.baseline) ?? null
      }
      return { ...metric, results, ratios }
    })
  }
}

// ---------------------------------------------------------------------------------------------
// Reporting

const fmt = (x: number | null | undefined): string => {
  if (x === null || x === undefined || Number.isNaN(x)) return "—"
  const abs = Math.abs(x)
  return abs >= 100 ? x.toFixed(0) : abs >= 10 ? x.toFixed(1) : x.toFixed(2)
}

const table = (results: ReadonlyArray<BenchmarkResult>, names: ReadonlyArray<string>): string => {
  const others = names.filter((n) => n !== "baseline")
  const header = [
    "benchmark",
    "metric",
    "unit",
    ...names.flatMap((n) => [`${n} median`, `${n} p95`]),
    ...others.map((n) => `${n}/baseline`)
  ]
  const rows = results.flatMap((bench) =>
    bench.metrics.map((metric) => {
      const row = [bench.name, `${metric.label} (${metric.better} is better)`, metric.unit]
      for (const name of names) row.push(fmt(metric.results[name]?.median), fmt(metric.results[name]?.p95))
      for (const name of others) {
        const r = metric.ratios[name]
        row.push(r === null || r === undefined || Number.isNaN(r) ? "—" : `${r.toFixed(2)}×`)
      }
      return row
    })
  )
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, c) => (c < 3 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ")
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n")
}

const qemuVersion = (): string => {
  try {
    return execFileSync(process.env.QEMU_BINARY ?? "qemu-system-x86_64", ["--version"], { encoding: "utf8" })
      .split("\n")[0]
  } catch {
    return "unknown"
  }
}

const main = async () => {
  installCleanup()
  const selected = only === undefined
    ? benchmarks
    : benchmarks.filter((b) => b.name === only || b.name.startsWith(`${only}-`))
  if (selected.length === 0) {
    process.stderr.write(`unknown benchmark ${only}; one of: ${benchmarks.map((b) => b.name).join(", ")}\n`)
    process.exit(2)
  }

  const targets = [await load(`impl-baseline${ext}`)]
  if (existsSync(join(benchDir, `impl-library${ext}`))) targets.push(await load(`impl-library${ext}`))
  else process.stderr.write("bench/impl-library.ts not found: running the baseline only\n")
  if (process.env.BENCH_PYTHON_BASELINE !== "off") {
    const { unavailable } = (await import(pathToFileURL(join(benchDir, `impl-python${ext}`)).href)) as {
      readonly unavailable: string | undefined
    }
    if (unavailable === undefined) targets.push(await load(`impl-python${ext}`))
    else process.stderr.write(`note: the Python baseline is skipped: ${unavailable}\n`)
  }

  const started = performance.now()
  const results: Array<BenchmarkResult> = []
  for (const bench of selected) results.push(await runBenchmark(bench, targets))
  for (const target of targets) await target.impl.dispose?.()

  const leftovers = descendants().filter((p) => p.comm === QEMU_COMM)
  const report = {
    meta: {
      date: new Date().toISOString(),
      quick,
      only: only ?? null,
      node: process.version,
      qemu: qemuVersion(),
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      implementations: targets.map((t) => t.name),
      config,
      totalSeconds: (performance.now() - started) / 1000,
      leftoverQemuProcesses: leftovers.length
    },
    benchmarks: results
  }
  const outDir = join(repoRoot, "bench", "results")
  mkdirSync(outDir, { recursive: true })
  writeFileSync(join(outDir, "latest.json"), JSON.stringify(report, null, 2) + "\n")

  const names = targets.map((t) => t.name)
  process.stdout.write(`\n${table(results, names)}\n\n`)
  process.stdout.write(
    `${report.meta.qemu}; Node ${process.version}; ${report.meta.cpus} CPUs; ` +
      `${quick ? "quick" : "full"} run in ${report.meta.totalSeconds.toFixed(1)} s; ` +
      `written to bench/results/latest.json\n`
  )
  if (leftovers.length > 0) {
    process.stderr.write(`error: an implementation left ${leftovers.length} QEMU process(es) running\n`)
    process.exitCode = 1
  }
  // Leftover VMs or an implementation's open handles must not keep the runner alive;
  // the exit handler installed by installCleanup kills any leftover VM.
  process.exit()
}

main().catch((error) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack : String(error)}\n`)
  process.exit(1)
})
