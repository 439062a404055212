/**
 * Where a QMP schema comes from: a QEMU binary (started with an empty machine for the duration of
 * the call), a QEMU already running (its monitor's address), or a file holding a
 * `query-qmp-schema` reply.
 *
 * @since 0.1.0
 */
import type { Duration } from "effect"
import { Effect, Either, Schema } from "effect"
import { readFile } from "node:fs/promises"
import { withHotSpan } from "../internal/tracing.js"
import * as Machine from "../Machine.js"
import type { QmpAddress, QmpClient } from "../Qmp.js"
import * as Qmp from "../Qmp.js"
import { QemuVersion, SchemaInfoList } from "../QmpIntrospection.js"

/**
 * The schema could not be read: the binary could not be started or questioned, the monitor not
 * reached, the file not read, or what came back was not a schema. `source` names where it was
 * looked for (the binary, the address or the file).
 *
 * @since 0.1.0
 * @category errors
 */
export class ProbeError extends Schema.TaggedError<ProbeError>()("ProbeError", {
  source: Schema.String,
  detail: Schema.String
}) {
  get message(): string {
    return `could not read the QMP schema of ${this.source}: ${this.detail}`
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
 * What a QEMU says about itself.
 *
 * @since 0.1.0
 * @category models
 */
export interface Probed {
  readonly version: QemuVersion
  readonly schema: SchemaInfoList
}

// Untyped on purpose: the probe must read whatever QEMU it is pointed at.
const ask = (qmp: Pick<QmpClient, "execute">) =>
  Effect.gen(function*() {
    const version = yield* qmp.execute("query-version" as string).pipe(
      Effect.flatMap(Schema.decodeUnknown(QemuVersion))
    )
    const schema = yield* qmp.execute("query-qmp-schema" as string).pipe(
      Effect.flatMap(Schema.decodeUnknown(SchemaInfoList))
    )
    return { version, schema }
  })

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
    return yield* ask(vm)
  }).pipe(
    Effect.scoped,
    Effect.mapError((error) => new ProbeError({ source: options.binary, detail: error.message })),
    withHotSpan("codegen.probe", { "qemu.binary": options.binary })
  )

/**
 * Reads a monitor address as the command line writes it; see `Qmp.parseAddress`.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { parseAddress } from "effect-qemu/codegen/Probe"
 *
 * assert.deepStrictEqual(parseAddress("unix:/run/vm/qmp.sock"), Either.right({ _tag: "Unix", path: "/run/vm/qmp.sock" }))
 * assert.deepStrictEqual(parseAddress("tcp:127.0.0.1:4444"), Either.right({ _tag: "Tcp", host: "127.0.0.1", port: 4444 }))
 * assert.ok(Either.isLeft(parseAddress("127.0.0.1:4444")))
 * ```
 */
export const parseAddress = Qmp.parseAddress

/**
 * @since 0.1.0
 * @category models
 */
export interface ProbeAddressOptions {
  /** The monitor of a running QEMU: an address, or its text form (see {@link parseAddress}). */
  readonly address: QmpAddress | string
  /** How long QEMU may take to greet and to answer each query. Default: 30 seconds. */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * Reads the version and schema of a QEMU that is already running (started by hand, or managed by
 * libvirt), through its QMP monitor. Only queries are sent; the connection is closed at the end
 * and QEMU keeps running.
 *
 * @since 0.1.0
 * @category constructors
 */
export const probeAddress = (options: ProbeAddressOptions): Effect.Effect<Probed, ProbeError> => {
  const label = typeof options.address === "string" ? options.address : JSON.stringify(options.address)
  return Effect.gen(function*() {
    const address = typeof options.address === "string" ? parseAddress(options.address) : Either.right(options.address)
    if (Either.isLeft(address)) return yield* Effect.fail(new ProbeError({ source: label, detail: address.left }))
    const timeout = options.timeout ?? "30 seconds"
    const qmp = yield* Qmp.make(address.right, { greetingTimeout: timeout, commandTimeout: timeout })
    return yield* ask(qmp)
  }).pipe(
    Effect.scoped,
    Effect.mapError((error) =>
      error._tag === "ProbeError" ? error : new ProbeError({ source: label, detail: error.message })
    ),
    withHotSpan("codegen.probeAddress", { "qmp.address": label })
  )
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ReadSchemaOptions {
  /** A file holding the `query-qmp-schema` reply: the list itself, or the whole `{ "return": [...] }`. */
  readonly file: string
  /** The QEMU it came from, for the generated doc comments (a file does not say). */
  readonly version?: QemuVersion | undefined
}

const SchemaFile = Schema.Union(SchemaInfoList, Schema.Struct({ return: SchemaInfoList }))

/**
 * Reads a schema saved to a file, e.g. by
 * `echo '{"execute":"qmp_capabilities"}{"execute":"query-qmp-schema"}' | socat - UNIX:qmp.sock`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const readSchemaFile = (
  options: ReadSchemaOptions
): Effect.Effect<{ readonly schema: SchemaInfoList; readonly version: QemuVersion | undefined }, ProbeError> =>
  Effect.tryPromise({
    try: () => readFile(options.file, "utf8"),
    catch: (error) => new ProbeError({ source: options.file, detail: String(error) })
  }).pipe(
    Effect.flatMap((text) =>
      Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (error) => new ProbeError({ source: options.file, detail: `not JSON: ${String(error)}` })
      })
    ),
    Effect.flatMap((json) =>
      Schema.decodeUnknown(SchemaFile)(json).pipe(
        Effect.mapError((error) =>
          new ProbeError({ source: options.file, detail: `not a query-qmp-schema reply: ${error.message}` })
        )
      )
    ),
    Effect.map((decoded) => ({
      schema: Array.isArray(decoded) ? decoded as SchemaInfoList : (decoded as { return: SchemaInfoList }).return,
      version: options.version
    }))
  )

/**
 * Reads a version as QEMU prints it, `major.minor.micro` (`10.0.0`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const parseVersion = (text: string, pkg = ""): Either.Either<QemuVersion, string> => {
  const match = /^(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (match === null) return Either.left(`${JSON.stringify(text)} is not a version such as 10.0.0`)
  const [major, minor, micro] = [match[1], match[2], match[3]].map(Number)
  return Either.right(QemuVersion.make({ qemu: { major, minor, micro }, package: pkg }))
}
