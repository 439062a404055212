/**
 * What the testing modules accept as "a machine" (a QMP client or anything that has one, such as
 * a `Machine`), and how they read a caller's timeout.
 *
 * @internal
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { QmpClient } from "../Qmp.js"
import { QmpArgumentError } from "../QmpError.js"
import * as Timer from "./timer.js"

/** A QMP client, or a value holding one as `qmp` (a `Machine`). */
export type QmpTarget = QmpClient | { readonly qmp: QmpClient }

/** The client behind a target. */
export const clientOf = (target: QmpTarget): QmpClient =>
  "execute" in target && "greeting" in target ? target : (target as { readonly qmp: QmpClient }).qmp

/** The default bound of the testing modules' waits. */
export const defaultTimeout = Duration.seconds(60)

/**
 * A caller's timeout, or the default; a value that is no positive duration fails with a
 * `QmpArgumentError` naming the operation, before anything is sent.
 */
export const timeoutOption = (
  operation: string,
  input: Duration.DurationInput | undefined,
  fallback: Duration.Duration = defaultTimeout
): Effect.Effect<Duration.Duration, QmpArgumentError> =>
  Either.match(Timer.decodeTimeoutOr(input, fallback), {
    onLeft: (detail) =>
      Effect.fail(new QmpArgumentError({ command: operation, reason: "InvalidOption", path: "timeout", detail })),
    onRight: Effect.succeed
  })
