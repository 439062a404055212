/**
 * Recording the library's metrics (see `Metrics`) from the places where things happen, cheaply:
 * each set of tags is made once and reused, so an update is a lookup in Effect's hook cache and a
 * few additions. Command names come from callers: past a bound, new ones are counted together.
 *
 * @internal
 */
import * as MetricLabel from "effect/MetricLabel"
import * as Metrics from "../Metrics.js"

type Labels = ReadonlyArray<MetricLabel.MetricLabel>

/** How a command ended, as `effect_qemu_qmp_commands_total` tags it. */
export type CommandOutcome = "ok" | "error" | "timeout" | "disconnected"

interface CommandLabels {
  readonly byOutcome: Record<CommandOutcome, Labels>
  readonly command: Labels
}

const maxCommandNames = 1024
const commandLabels = new Map<string, CommandLabels>()

const labelsOf = (command: string): CommandLabels => {
  const known = commandLabels.get(command)
  if (known !== undefined) return known
  const name = commandLabels.size < maxCommandNames ? command : "(other)"
  const byName = MetricLabel.make("command", name)
  const made: CommandLabels = {
    byOutcome: {
      ok: [byName, MetricLabel.make("outcome", "ok")],
      error: [byName, MetricLabel.make("outcome", "error")],
      timeout: [byName, MetricLabel.make("outcome", "timeout")],
      disconnected: [byName, MetricLabel.make("outcome", "disconnected")]
    },
    command: [byName]
  }
  if (name === command) commandLabels.set(command, made)
  return made
}

/** A command ended; `seconds` is its round trip when a reply came. */
export const commandEnded = (command: string, outcome: CommandOutcome, seconds?: number): void => {
  const labels = labelsOf(command)
  Metrics.qmpCommands.unsafeUpdate(1, labels.byOutcome[outcome])
  if (seconds !== undefined) Metrics.qmpCommandDuration.unsafeUpdate(seconds, labels.command)
}

const none: Labels = []

/** An event was dropped by a bounded buffer. */
export const eventDropped = (): void => Metrics.qmpEventsDropped.unsafeUpdate(1, none)

const launchOk: Labels = [MetricLabel.make("outcome", "ok")]
const launchFailed: Labels = [MetricLabel.make("outcome", "failed")]

/** A launch ended: handed over after `seconds`, or failed. */
export const launchEnded = (seconds: number | undefined): void => {
  if (seconds === undefined) return Metrics.machineLaunches.unsafeUpdate(1, launchFailed)
  Metrics.machineLaunches.unsafeUpdate(1, launchOk)
  Metrics.machineLaunchDuration.unsafeUpdate(seconds, none)
}

/** A machine starts counting as running; the returned function stops it, once. */
export const machineRunning = (): () => void => {
  Metrics.machinesRunning.unsafeModify(1, none)
  let counted = true
  return () => {
    if (!counted) return
    counted = false
    Metrics.machinesRunning.unsafeModify(-1, none)
  }
}

const shutdownReasons = new Map<string, Labels>()

/** A stop ended in `AbnormalShutdown` for `reason`. */
export const abnormalShutdown = (reason: string): void => {
  let labels = shutdownReasons.get(reason)
  if (labels === undefined) {
    labels = [MetricLabel.make("reason", reason)]
    shutdownReasons.set(reason, labels)
  }
  Metrics.abnormalShutdowns.unsafeUpdate(1, labels)
}

const fromGuest: Labels = [MetricLabel.make("direction", "in")]
const toGuest: Labels = [MetricLabel.make("direction", "out")]

/** Bytes came from the guest's console (`in`) or went to it (`out`). */
export const consoleBytes = (direction: "in" | "out", bytes: number): void =>
  Metrics.consoleBytes.unsafeUpdate(bytes, direction === "in" ? fromGuest : toGuest)
