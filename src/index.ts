/**
 * effect-qemu: launch, drive, watch and tear down QEMU virtual machines from Effect.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Qmp from "./Qmp.js"
/** @since 0.1.0 */
export * from "./QmpError.js"
/** @since 0.1.0 */
export * as QmpMessage from "./QmpMessage.js"
/** @since 0.1.0 */
export type * from "./QmpCommands.js"
