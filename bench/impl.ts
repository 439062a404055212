/**
 * The contract every benchmarked implementation fulfils: one method per scenario.
 *
 * Each method does one job end to end (setup, the timed part, teardown) and resolves with what it timed.
 * Every `ms` is wall time in milliseconds, taken with `performance.now()` around exactly the part
 * named in the method's comment — setup and teardown stay outside it. Memory figures are not
 * reported by the implementation: the runner runs those scenarios in a fresh Node process and
 * reads that process's memory itself.
 *
 * All QEMU processes must be started with the same flags:
 * `-M none -nodefaults -display none -vga none` and QMP on `-chardev socket,id=mon,fd=3 -mon chardev=mon,mode=control`.
 * Every method must leave no QEMU process behind when its promise settles.
 */

import type { WorkerRequest, WorkerResult } from "./worker.js"

/** A span of wall time, in milliseconds. */
export interface Timed {
  readonly ms: number
}

export interface Implementation {
  /** Short label used in tables and JSON (`"baseline"`, `"library"`). */
  readonly name: string

  /** Timed: spawn until QMP is negotiated (greeting read, `qmp_capabilities` answered). Then shut down, untimed. */
  launch(): Promise<Timed>

  /** Launch untimed. Timed: `quit` sent until the process has exited (its exit observed). */
  shutdown(): Promise<Timed>

  /**
   * Launch one VM untimed. Timed: `requests` `query-status` round trips on it, spread over `workers`
   * concurrent sequential loops (`workers: 1` = strictly one after another). Then shut down, untimed.
   */
  qmpRoundTrips(options: { readonly requests: number; readonly workers: number }): Promise<Timed>

  /** Timed: launch `machines` VMs concurrently, one `query-status` each, shut them all down, all exited. */
  fleet(options: { readonly machines: number }): Promise<Timed>

  /**
   * A fake console peer listens on the UNIX socket `socketPath` and, once connected to, writes `bytes`
   * bytes as fast as it can and closes. Timed: connect until the end of the stream; resolves with the
   * number of bytes received.
   */
  consoleDrain(
    options: { readonly socketPath: string; readonly bytes: number }
  ): Promise<Timed & { readonly bytes: number }>

  /**
   * Timed: launch `machines` VMs concurrently up to QMP negotiated. Then, untimed, await `whileIdle()`
   * (the runner samples memory meanwhile; do nothing else), then shut them all down.
   */
  idleMachines(options: { readonly machines: number; readonly whileIdle: () => Promise<void> }): Promise<Timed>

  /**
   * Optional: runs a fresh-process scenario itself and measures it (an implementation in another
   * language). Without it, the runner forks `bench/worker.ts` with this module.
   */
  runFresh?(request: WorkerRequest): Promise<WorkerResult>

  /** Optional: benchmarks this implementation does not take part in (by name). */
  readonly skips?: ReadonlyArray<string>

  /** Optional: release whatever the implementation holds (a runtime, say) before its process ends. */
  dispose?(): Promise<void>
}

/** What an implementation module (`bench/impl-*.ts`) exports. */
export interface ImplementationModule {
  readonly default: Implementation
}
