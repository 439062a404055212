/**
 * Asks a QEMU binary for its own QMP schema: starts it with an empty machine, runs
 * `query-version` and `query-qmp-schema`, and ends it.
 *
 * @since 0.1.0
 */
import type { Duration } from "effect"
import { Effect, Schema } from "effect"
import { withHotSpan } from "../internal/tracing.js"
import * as Machine from "../Machine.js"
import { QemuVersion, SchemaInfoList } from "./Introspect.js"

/**
 * The binary could not be started or questioned, or its answer was not a schema.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProbeError extends Schema.TaggedError<ProbeError>()("ProbeError", {
  binary: Schema.String,
  detail: Schema.String
}) {
  get message(): string {
    return `could not read the QMP schema of ${this.binary}: ${this.detail}`
  }
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ProbeOptions {
  /** A `qemu-system-*` binary, by path or looked up on `PATH`. */
  readonly binary: string
  /** How long QEMU may take to greet and to answer each query. */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * What a binary says about itself.
 *
 * @since 0.1.0
 * @category models
 */
export interface Probed {
  readonly version: QemuVersion
  readonly schema: SchemaInfoList
}

/**
 * Reads the version and schema of a binary. QEMU runs only for the duration of the call.
 *
 * @since 0.1.0
 * @category constructors
 */
export const probe = (options: ProbeOptions): Effect.Effect<Probed, ProbeError> =>
  Effect.gen(function*() {
    const timeout = options.timeout ?? "30 seconds"
    const vm = yield* Machine.make({
      binary: options.binary,
      name: "codegen-probe",
      args: ["-M", "none", "-nodefaults"],
      launchTimeout: timeout,
      qmpOptions: { commandTimeout: timeout }
    })
    // Untyped on purpose: the probe must read whatever QEMU it is pointed at.
    const version = yield* vm.execute("query-version" as string).pipe(Effect.flatMap(Schema.decodeUnknown(QemuVersion)))
    const schema = yield* vm.execute("query-qmp-schema" as string).pipe(
      Effect.flatMap(Schema.decodeUnknown(SchemaInfoList))
    )
    return { version, schema }
  }).pipe(
    Effect.scoped,
    Effect.mapError((error) => new ProbeError({ binary: options.binary, detail: error.message })),
    withHotSpan("codegen.probe", { "qemu.binary": options.binary })
  )
