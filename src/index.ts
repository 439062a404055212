/**
 * effect-qemu: launch, drive, watch and tear down QEMU virtual machines from Effect.
 *
 * @since 0.1.0
 */

/**
 * A QEMU virtual machine as a scoped resource.
 *
 * @since 0.1.0
 */
export * as Machine from "./Machine.js"

/**
 * The machine configuration schema.
 *
 * @since 0.1.0
 */
export * as MachineConfig from "./MachineConfig.js"

/**
 * Launch, configuration and shutdown errors.
 *
 * @since 0.1.0
 */
export * from "./MachineError.js"

/**
 * The QEMU process service.
 *
 * @since 0.1.0
 */
export * as QemuProcess from "./QemuProcess.js"

/**
 * The QMP client service.
 *
 * @since 0.1.0
 */
export * as Qmp from "./Qmp.js"

/**
 * QMP errors.
 *
 * @since 0.1.0
 */
export * from "./QmpError.js"

/**
 * QMP wire messages and event matching.
 *
 * @since 0.1.0
 */
export * as QmpMessage from "./QmpMessage.js"

/**
 * The typed QMP surface.
 *
 * @since 0.1.0
 */
export * as QmpCommands from "./QmpCommands.js"

/**
 * The model of QEMU's `query-qmp-schema` reply: decode a schema, index it by command and event.
 *
 * @since 0.2.0
 */
export * as QmpIntrospection from "./QmpIntrospection.js"

/**
 * Checking command arguments against QEMU's schema before sending them.
 *
 * @since 0.1.0
 */
export * as QmpValidate from "./QmpValidate.js"

/**
 * The serial console service.
 *
 * @since 0.1.0
 */
export * as Console from "./Console.js"

/**
 * Console errors.
 *
 * @since 0.1.0
 */
export * from "./ConsoleError.js"

/**
 * A shell on the console: run a command in the guest, get its exit code and output.
 *
 * @since 0.1.0
 */
export * as Shell from "./Shell.js"

/**
 * A client for QEMU's guest agent: typed commands, exec with exit code and output, file copies.
 *
 * @since 0.2.0
 */
export * as GuestAgent from "./GuestAgent.js"

/**
 * Guest agent errors.
 *
 * @since 0.2.0
 */
export * from "./GuestAgentError.js"

/**
 * Tiny boot-sector guests for console tests and demos.
 *
 * @since 0.1.0
 */
export * as TinyGuest from "./TinyGuest.js"

/**
 * The library's Effect metrics: QMP commands and their latency, launches, running machines,
 * abnormal shutdowns, dropped events, console bytes.
 *
 * @since 0.2.0
 */
export * as Metrics from "./Metrics.js"

/**
 * Option builders for QEMU's command line: `-blockdev`, `-drive`, `-device`, `-netdev`, `-object`,
 * `-incoming`.
 *
 * @since 0.2.0
 */
export * as CommandLine from "./CommandLine.js"

/**
 * The qemu-img service: create, inspect, check, compare, map, convert, resize and snapshot images.
 *
 * @since 0.2.0
 */
export * as QemuImg from "./QemuImg.js"

/**
 * The qemu-io service, and HMP's `qemu-io` command for a running machine.
 *
 * @since 0.2.0
 */
export * as QemuIo from "./QemuIo.js"

/**
 * Errors of qemu-img and qemu-io.
 *
 * @since 0.2.0
 */
export * from "./ImageError.js"

/**
 * Wait strategies: what "ready" means for a machine (console patterns, QMP events, forwarded
 * ports, guest commands), composed with `all` and `any` under one deadline.
 *
 * @since 0.2.0
 */
export * as Wait from "./Wait.js"
