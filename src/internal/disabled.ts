/**
 * The stand-in services of a machine launched without them (`qmp: false`): every call fails with
 * an error that says why, so code written against the full machine still runs.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { QmpClient } from "../Qmp.js"
import { QmpDisconnected } from "../QmpError.js"

/** A QMP client whose every call fails with `QmpDisconnected` naming the machine. */
export const disabledQmp = (name: string): QmpClient => {
  const error = new QmpDisconnected({ reason: `machine "${name}" was launched without a QMP monitor (qmp: false)` })
  const fail = Effect.fail(error)
  return {
    name,
    address: "none",
    greeting: { QMP: { version: { qemu: { major: 0, minor: 0, micro: 0 }, package: "" }, capabilities: [] } },
    version: "0.0.0",
    capabilities: [],
    execute: () => fail,
    raw: () => fail,
    executeWithFd: () => fail,
    waitEvent: () => fail,
    waitEvents: () => fail,
    executeAndWait: () => fail,
    subscribe: Effect.die(error),
    events: Stream.empty,
    takeEvents: Effect.succeed([]),
    nextEvent: () => fail,
    nextEvents: () => fail,
    hmp: () => fail,
    clearEvents: Effect.void,
    lastShutdown: Effect.succeedNone,
    isOpen: Effect.succeed(false),
    closed: Effect.succeed(error),
    close: Effect.void,
    duplex: undefined
  }
}
