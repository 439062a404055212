/**
 * What the testing modules accept as "a machine": a QMP client or anything that has one (a
 * `Machine`).
 *
 * @internal
 */
import type { QmpClient } from "../Qmp.js"

/** A QMP client, or a value holding one as `qmp` (a `Machine`). */
export type QmpTarget = QmpClient | { readonly qmp: QmpClient }

/** The client behind a target. */
export const clientOf = (target: QmpTarget): QmpClient =>
  "execute" in target && "greeting" in target ? target : (target as { readonly qmp: QmpClient }).qmp
