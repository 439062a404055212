/**
 * effect-qemu/testing: what a VM test needs beyond the machine itself. Jobs run to their end,
 * transcripts compared with reference output, migration between two machines, and path
 * assertions on replies: QEMU's iotests helpers, in Effect.
 *
 * @since 0.2.0
 */

/**
 * Block and background jobs run to their end, with how they ended.
 *
 * @since 0.2.0
 */
export * as Job from "./Job.js"

/**
 * Transcripts of commands, replies and events, filtered and compared with reference output.
 *
 * @since 0.2.0
 */
export * as Transcript from "./Transcript.js"

/**
 * Live migration from one machine to another.
 *
 * @since 0.2.0
 */
export * as Migration from "./Migration.js"

/**
 * Path assertions on replies and events.
 *
 * @since 0.2.0
 */
export * as Assert from "./Assert.js"
