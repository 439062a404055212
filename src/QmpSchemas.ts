/**
 * The `Schema`s and types generated from the QMP schema of the bundled QEMU (7.2): one `Schema`
 * and one type per QAPI type, each command's arguments and result, each event's data, and the
 * `Commands` and `Events` maps that make up the default typed surface (see `QmpCommands`).
 * `effect-qemu codegen` writes the same module for another QEMU.
 *
 * @since 0.1.0
 */
export * from "./generated/qemu.js"
