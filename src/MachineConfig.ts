/**
 * The configuration of a machine, decoded with `Schema` so that a bad value is reported before
 * anything is spawned or created on disk, naming the field.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fdArgs } from "./internal/fdArgs.js"
import { ShapeCache } from "./internal/shapeKey.js"
import { decodeTimeout } from "./internal/timer.js"
import { MachineConfigError } from "./MachineError.js"
import type { QmpOptions } from "./Qmp.js"
import type { Strategy } from "./Wait.js"
import { isStrategy } from "./Wait.js"

/**
 * A timeout as Effect accepts it: `"30 seconds"`, a number of milliseconds, or a `Duration`.
 * It must be positive (or infinite): zero, negative and NaN durations are refused, naming the
 * field, since a zero bound would fail every launch or kill every machine on release.
 *
 * @since 0.1.0
 * @category models
 */
export const DurationInput = Schema.transformOrFail(
  // Typed as `Duration.DurationInput` for callers; checked for real below.
  Schema.declare((_: unknown): _ is Duration.DurationInput => true),
  Schema.DurationFromSelf,
  {
    strict: true,
    decode: (input, _, ast) =>
      Either.match(decodeTimeout(input), {
        onLeft: (detail) => ParseResult.fail(new ParseResult.Type(ast, input, detail)),
        onRight: ParseResult.succeed
      }),
    encode: ParseResult.succeed
  }
)

const Name = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, {
    message: () => "expected 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
  })
)

const NonEmpty = (what: string) =>
  Schema.String.pipe(Schema.minLength(1, { message: () => `must not be empty: ${what}` }))

const Monitor = Schema.Union(
  Schema.TaggedStruct("Socketpair", {}),
  Schema.TaggedStruct("Unix", { path: Schema.optional(NonEmpty("give a socket path or leave path out")) }),
  Schema.TaggedStruct("Tcp", {
    host: Schema.optionalWith(NonEmpty("give an address to listen on"), { default: () => "127.0.0.1" }),
    port: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 65535)), { default: () => 0 })
  })
)

const ConsoleConfig = Schema.Struct({
  /** A device to attach the console to, e.g. `isa-serial` or `virtconsole`; default: `-serial`. */
  deviceType: Schema.optional(NonEmpty("name a device type or leave deviceType out")),
  /** The console's index: that many `-serial null` come before it. */
  index: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 31)), { default: () => 0 }),
  /** Read the console continuously in the background. */
  drain: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Append console output to this file (implies drain). */
  logFile: Schema.optional(NonEmpty("give a file path or leave logFile out")),
  /** How much recent output is kept in memory. */
  bufferBytes: Schema.optional(Schema.Int.pipe(Schema.positive()))
})

const LaunchFdConfig = Schema.Struct({
  fd: Schema.Int.pipe(Schema.nonNegative()),
  set: Schema.Int.pipe(Schema.nonNegative()),
  opaque: Schema.optional(Schema.String),
  opts: Schema.optional(Schema.String)
})

/**
 * The QMP session options a machine passes on: every option of `Qmp.QmpOptions` but the name
 * (the machine's own). The check below makes the compiler refuse any drift between the two.
 */
const QmpConfig = Schema.Struct({
  oob: Schema.optional(Schema.Boolean),
  commandTimeout: Schema.optional(DurationInput),
  greetingTimeout: Schema.optional(DurationInput),
  maxMessageBytes: Schema.optional(Schema.Int.pipe(Schema.greaterThanOrEqualTo(4096))),
  eventBufferSize: Schema.optional(Schema.Int.pipe(Schema.positive())),
  eventBufferBytes: Schema.optional(Schema.Int.pipe(Schema.positive())),
  checkArgs: Schema.optional(Schema.Boolean),
  checkCommands: Schema.optional(Schema.Boolean),
  decodeReplies: Schema.optional(Schema.Boolean)
})

type SameKeys<A, B> = [Exclude<keyof A, keyof B>, Exclude<keyof B, keyof A>] extends [never, never] ? true : never
const qmpOptionsInSync: SameKeys<typeof QmpConfig.Encoded, Omit<QmpOptions, "name">> = true
void qmpOptionsInSync

/**
 * The machine configuration schema. Every field but none is optional.
 *
 * @since 0.1.0
 * @category models
 */
export const MachineConfig = Schema.Struct({
  /** The QEMU binary: a name on PATH or a path. */
  binary: Schema.optionalWith(NonEmpty("name the QEMU binary, e.g. qemu-system-x86_64"), {
    default: () => "qemu-system-x86_64"
  }),
  /** Arguments appended after the library's own. Passed verbatim: no shell is involved. */
  args: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  /** A command that runs QEMU, e.g. `["strace", "-f"]`. */
  wrapper: Schema.optionalWith(Schema.Array(NonEmpty("wrapper entries must not be empty")), { default: () => [] }),
  /** A name for logs, spans and temp files. Default: `qemu-<pid>-<n>`. */
  name: Schema.optional(Name),
  /** Where the machine's temp directory is created. Default: the OS temp dir. Must exist. */
  baseTempDir: Schema.optional(NonEmpty("give a directory or leave baseTempDir out")),
  /** Where UNIX sockets go when the monitor is a UNIX socket. Default: the machine's temp dir. */
  sockDir: Schema.optional(NonEmpty("give a directory or leave sockDir out")),
  /** How QMP reaches QEMU. Default: a socketpair handed to QEMU as fd 3. */
  monitor: Schema.optionalWith(Monitor, { default: () => ({ _tag: "Socketpair" as const }) }),
  /** Whether to give QEMU a QMP monitor at all (Python's `QEMUMachine.set_qmp_monitor`). */
  qmp: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /** QMP client options. */
  qmpOptions: Schema.optionalWith(QmpConfig, { default: () => ({}) }),
  /** `-machine TYPE`. */
  machineType: Schema.optional(NonEmpty("name a machine type, e.g. pc or q35, or leave it out")),
  /** A serial console on a socketpair (Python's `QEMUMachine.set_console`). */
  console: Schema.optional(ConsoleConfig),
  /**
   * Guest TCP ports reachable from this host: a NIC on user-mode networking forwards each from a
   * free port on 127.0.0.1 that QEMU binds (see `Machine.ports` for the host port of each).
   */
  ports: Schema.optional(Schema.Array(Schema.Int.pipe(Schema.between(1, 65535)))),
  /** The NIC the forwarded ports go through, e.g. `e1000`. Default: `virtio-net-pci`. */
  nicModel: Schema.optional(NonEmpty("name a NIC device, e.g. virtio-net-pci or e1000, or leave it out")),
  /**
   * What "ready" means: the machine is handed over only once this strategy is met (see `Wait`);
   * if it is not, the machine is stopped and the launch fails with `WaitError`.
   */
  waitFor: Schema.optional(
    Schema.declare((u: unknown): u is Strategy => isStrategy(u), {
      message: () => "expected a wait strategy, e.g. Wait.forConsole(\"login:\")"
    })
  ),
  /** Descriptors handed to QEMU at launch with `-add-fd`. */
  fds: Schema.optionalWith(Schema.Array(LaunchFdConfig), { default: () => [] }),
  /** Kill QEMU when this process dies (Linux, through `setpriv --pdeathsig KILL`). */
  parentDeathSignal: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /**
   * A virtio-serial port named `org.qemu.guest_agent.0` on a socketpair, for the guest agent
   * (`Machine.guestAgent`); the machine needs a PCI bus (e.g. `-M pc` or `q35`).
   */
  guestAgent: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** From spawn to QMP ready. */
  launchTimeout: Schema.optionalWith(DurationInput, { default: () => Duration.seconds(30) }),
  /** How long a graceful shutdown may take before QEMU is killed. */
  shutdownTimeout: Schema.optionalWith(DurationInput, { default: () => Duration.seconds(30) })
})

/**
 * What a caller writes.
 *
 * @since 0.1.0
 * @category models
 */
export type MachineConfigInput = typeof MachineConfig.Encoded

/**
 * A decoded configuration, defaults filled in.
 *
 * @since 0.1.0
 * @category models
 */
export type ResolvedConfig = typeof MachineConfig.Type & { readonly name: string; readonly baseTempDir: string }

/**
 * The longest path a UNIX socket address can hold on Linux (108 bytes with the NUL): a longer
 * monitor or console socket path fails the config check with a `MachineConfigError`.
 *
 * @since 0.1.0
 * @category constants
 */
export const maxSocketPathBytes = 107

let counter = 0

/**
 * The prefix of a machine's temp directory. It carries this process's pid, so that a directory
 * left behind by a controller that was SIGKILLed can be recognised and removed later.
 *
 * @internal
 */
export const tempDirPrefix = (name: string): string => `effect-qemu-${name}-p${process.pid}-`

/**
 * Recognises a temp directory of this library and the pid of the process that made it.
 *
 * @internal
 */
export const tempDirPattern = /^effect-qemu-.+-p(\d+)-[A-Za-z0-9]{6}$/

const firstIssue = (error: ParseResult.ParseError): MachineConfigError => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const issue = issues[0]
  const field = issue === undefined || issue.path.length === 0 ? "(root)" : issue.path.map(String).join(".")
  return new MachineConfigError({ field, detail: issue?.message ?? error.message })
}

const existsAsNonRegularFile = (path: string) => {
  try {
    return !Fs.statSync(path).isFile()
  } catch {
    return false
  }
}

const isDirectory = (path: string) => {
  try {
    return Fs.statSync(path).isDirectory()
  } catch {
    return false
  }
}

/** Forwarded ports: each once, read through the monitor, and a NIC model only with them. */
const checkPorts = (config: typeof MachineConfig.Type): { field: string; detail: string } | undefined => {
  if (config.nicModel !== undefined && config.ports === undefined) {
    return { field: "nicModel", detail: "a NIC model without ports; add ports (an empty list for none) or drop it" }
  }
  if (config.ports === undefined) return undefined
  const twice = config.ports.findIndex((port, index) => config.ports!.indexOf(port) !== index)
  if (twice >= 0) return { field: `ports.${twice}`, detail: `port ${config.ports[twice]} is listed twice` }
  if (!config.qmp && config.ports.length > 0) {
    return { field: "ports", detail: "the host ports QEMU picks are read through QMP; qmp is false" }
  }
  return undefined
}

const decodeConfig = Schema.decodeUnknownEither(MachineConfig, { onExcessProperty: "error" })

// A fleet launches many machines of one shape: each shape is decoded once. Keyed by the input's
// content (not its identity), so a caller's object changed between launches is decoded again.
const decoded = new ShapeCache<Either.Either<typeof MachineConfig.Type, ParseResult.ParseError>>(16)

/**
 * Decodes and checks a configuration. Pure apart from reading the file system: nothing is
 * created.
 *
 * @since 0.1.0
 * @category constructors
 */
export const resolve = (input: MachineConfigInput): Effect.Effect<ResolvedConfig, MachineConfigError> =>
  Effect.suspend(() => {
    const result = decoded.get(input, () => decodeConfig(input), Either.isRight)
    if (Either.isLeft(result)) return Effect.fail(firstIssue(result.left))
    const config = result.right
    const name = config.name ?? `qemu-${process.pid}-${++counter}`
    const baseTempDir = Path.resolve(config.baseTempDir ?? Os.tmpdir())
    const fail = (field: string, detail: string) => Effect.fail(new MachineConfigError({ field, detail }))
    if (!isDirectory(baseTempDir)) {
      return fail("baseTempDir", `"${baseTempDir}" is not an existing directory; create it or pick another`)
    }
    if (config.sockDir !== undefined && !isDirectory(config.sockDir)) {
      return fail("sockDir", `"${config.sockDir}" is not an existing directory; create it or pick another`)
    }
    const daemonize = config.args.findIndex((arg) => arg === "-daemonize" || arg === "--daemonize")
    if (daemonize >= 0) {
      // A daemonized QEMU outlives the process the library spawned and so every bound on it.
      return fail(
        `args.${daemonize}`,
        "-daemonize detaches QEMU from the machine's lifetime; leave it out (the machine already runs in the background)"
      )
    }
    if (config.console?.logFile !== undefined && existsAsNonRegularFile(config.console.logFile)) {
      return fail(
        "console.logFile",
        `"${config.console.logFile}" exists and is not a regular file (a FIFO or device would block the launch); give a file path`
      )
    }
    if (!config.qmp && config.monitor._tag !== "Socketpair") {
      return fail("monitor", "a monitor address was given but qmp is false; drop one of the two")
    }
    if (config.qmpOptions.oob === true && !config.qmp) {
      return fail("qmpOptions.oob", "oob needs the QMP monitor; qmp is false")
    }
    if (config.monitor._tag === "Unix" && config.monitor.path !== undefined && config.sockDir !== undefined) {
      return fail("sockDir", "monitor.path names the socket itself and sockDir is where a default one goes; drop one")
    }
    if (config.monitor._tag === "Unix") {
      // The default socket lives in the temp directory: predict its length (the name is in the
      // directory's name too, see internal/tempDir's MachineDir) before creating it.
      const path = config.monitor.path ??
        Path.join(config.sockDir ?? Path.join(baseTempDir, `${tempDirPrefix(name)}XXXXXX`), `${name}-qmp.sock`)
      const bytes = Buffer.byteLength(Path.resolve(path))
      if (bytes > maxSocketPathBytes) {
        return fail(
          config.monitor.path !== undefined ? "monitor.path" : config.sockDir !== undefined ? "sockDir" : "baseTempDir",
          `the UNIX socket path "${path}" is ${bytes} bytes, over the ${maxSocketPathBytes}-byte limit; use a shorter sockDir, name or path`
        )
      }
    }
    if (config.console?.logFile !== undefined && !isDirectory(Path.dirname(Path.resolve(config.console.logFile)))) {
      return fail(
        "console.logFile",
        `the directory of "${config.console.logFile}" does not exist; create it or pick another path`
      )
    }
    const ports = checkPorts(config)
    if (ports !== undefined) return fail(ports.field, ports.detail)
    const wait = config.waitFor?.invalid
    if (wait !== undefined) return fail("waitFor", `${wait.strategy}: ${wait.reason}`)
    const fds = fdArgs({ fds: config.fds, firstChildFd: 3 })
    if (Either.isLeft(fds)) return fail(`fds.${fds.left.index}.${fds.left.field}`, fds.left.message)
    return Effect.succeed({ ...config, name, baseTempDir })
  })

/**
 * What {@link extend} adds to a configuration: lists are appended, `qmpOptions` and `console`
 * merged field by field, every other field replaced.
 *
 * @since 0.2.0
 * @category models
 */
export type MachineConfigExtension = MachineConfigInput

/**
 * A configuration grown from another, as test suites grow a machine's command line between
 * launches (add a drive, an `-incoming`, a device): `args` and `fds` of the extension are appended
 * to the base's, `qmpOptions` and `console` are merged field by field, and any other field the
 * extension gives (not `undefined`) replaces the base's. The base is not changed. Nothing is checked here:
 * `Machine.make` (or {@link resolve}) checks the result as it checks any configuration.
 *
 * @since 0.2.0
 * @category combinators
 * @example
 * ```ts
 * import { MachineConfig } from "effect-qemu"
 *
 * const base = { args: ["-M", "none", "-nodefaults"] }
 * const withDrive = MachineConfig.extend(base, { args: ["-blockdev", "driver=null-co,node-name=drive0"] })
 * // withDrive.args: ["-M", "none", "-nodefaults", "-blockdev", "driver=null-co,node-name=drive0"]
 * ```
 */
export const extend = (base: MachineConfigInput, extension: MachineConfigExtension): MachineConfigInput => {
  // A field given as `undefined` is a field not given.
  const given = Object.fromEntries(Object.entries(extension).filter(([, value]) => value !== undefined))
  const merged: MachineConfigInput = { ...base, ...given }
  return {
    ...merged,
    ...(base.args !== undefined || extension.args !== undefined
      ? { args: [...(base.args ?? []), ...(extension.args ?? [])] }
      : {}),
    ...(base.fds !== undefined || extension.fds !== undefined
      ? { fds: [...(base.fds ?? []), ...(extension.fds ?? [])] }
      : {}),
    ...(base.qmpOptions !== undefined || extension.qmpOptions !== undefined
      ? { qmpOptions: { ...base.qmpOptions, ...extension.qmpOptions } }
      : {}),
    ...(base.console !== undefined && extension.console !== undefined
      ? { console: { ...base.console, ...extension.console } }
      : {})
  }
}
