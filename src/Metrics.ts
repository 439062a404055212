/**
 * The library's Effect metrics. They live in Effect's global metric registry like every
 * `Metric`, so any exporter reads them (`@effect/opentelemetry`'s metrics, a Prometheus
 * endpoint, or `Metric.snapshot`). Updating them costs a map lookup and a few additions per
 * event; nothing is recorded elsewhere and nothing is exported unless an application does so.
 *
 * | metric | type | tags |
 * | --- | --- | --- |
 * | `effect_qemu_qmp_commands_total` | counter | `command`, `outcome` (`ok`, `error`, `timeout`, `disconnected`) |
 * | `effect_qemu_qmp_command_duration_seconds` | histogram | `command` (replies only) |
 * | `effect_qemu_qmp_events_dropped_total` | counter | |
 * | `effect_qemu_machine_launches_total` | counter | `outcome` (`ok`, `failed`) |
 * | `effect_qemu_machine_launch_duration_seconds` | histogram | |
 * | `effect_qemu_machines_running` | gauge | |
 * | `effect_qemu_machine_abnormal_shutdowns_total` | counter | `reason` (`Timeout`, `QuitFailed`) |
 * | `effect_qemu_console_bytes_total` | counter | `direction` (`in`: from the guest, `out`: to it) |
 *
 * @since 0.2.0
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { Metrics } from "effect-qemu"
 *
 * const commandsOk = Metric.value(
 *   Metrics.qmpCommands.pipe(Metric.tagged("command", "query-status"), Metric.tagged("outcome", "ok"))
 * )
 * const program = Effect.map(commandsOk, (state) => state.count)
 * ```
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"

/**
 * QMP commands executed, by `command` and `outcome`: `ok` (a `return` reply), `error` (an error
 * reply), `timeout`, `disconnected` (the session ended first).
 *
 * @since 0.2.0
 * @category metrics
 */
export const qmpCommands = Metric.counter("effect_qemu_qmp_commands_total", {
  description: "QMP commands executed, by command and outcome",
  incremental: true
})

/**
 * Seconds from a QMP command's write to its reply, by `command`: 100 µs to about 26 s in
 * doubling buckets.
 *
 * @since 0.2.0
 * @category metrics
 */
export const qmpCommandDuration = Metric.histogram(
  "effect_qemu_qmp_command_duration_seconds",
  MetricBoundaries.exponential({ start: 0.0001, factor: 2, count: 19 }),
  "Seconds from a QMP command's write to its reply, by command"
)

/**
 * QMP events dropped by the bounded event buffers (`eventBufferSize`, `eventBufferBytes`)
 * because nobody took them.
 *
 * @since 0.2.0
 * @category metrics
 */
export const qmpEventsDropped = Metric.counter("effect_qemu_qmp_events_dropped_total", {
  description: "QMP events dropped by the bounded event buffers",
  incremental: true
})

/**
 * Machine launches, by `outcome`: `ok` (QMP ready and the machine handed over) or `failed`.
 *
 * @since 0.2.0
 * @category metrics
 */
export const machineLaunches = Metric.counter("effect_qemu_machine_launches_total", {
  description: "Machine launches, by outcome",
  incremental: true
})

/**
 * Seconds from a launch's start to the machine being handed over (successful launches).
 *
 * @since 0.2.0
 * @category metrics
 */
export const machineLaunchDuration = Metric.histogram(
  "effect_qemu_machine_launch_duration_seconds",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 14 }),
  "Seconds from a launch's start to the machine being handed over"
)

/**
 * Machines launched whose QEMU has not exited yet and whose scope is still open.
 *
 * @since 0.2.0
 * @category metrics
 */
export const machinesRunning = Metric.gauge("effect_qemu_machines_running", {
  description: "Machines launched whose QEMU has not exited and whose scope is open"
})

/**
 * Stops that ended in `AbnormalShutdown`, by `reason`.
 *
 * @since 0.2.0
 * @category metrics
 */
export const abnormalShutdowns = Metric.counter("effect_qemu_machine_abnormal_shutdowns_total", {
  description: "Stops that ended in AbnormalShutdown, by reason",
  incremental: true
})

/**
 * Bytes through serial consoles, by `direction`: `in` from the guest, `out` to it.
 *
 * @since 0.2.0
 * @category metrics
 */
export const consoleBytes = Metric.counter("effect_qemu_console_bytes_total", {
  description: "Bytes through serial consoles, by direction",
  incremental: true
})
