/**
 * The `qemu-img` tool as a service: create, inspect, check, compare, map, convert, resize and
 * snapshot disk images, with results decoded from qemu-img's JSON output (64-bit sizes kept exact:
 * beyond 2^53 they are `bigint`s) and qemu-img's own message in every error. Images and overlays
 * can be scoped: made in a private temp directory that is removed with the scope.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { QemuImg } from "effect-qemu"
 *
 * const program = Effect.gen(function*() {
 *   const img = yield* QemuImg.QemuImg
 *   const base = yield* img.scopedImage({ format: "raw", size: "1M" })
 *   const top = yield* img.scopedOverlay(base)
 *   const info = yield* img.info(top)
 *   return info.backingFilename // the base image's path
 * }).pipe(Effect.scoped, Effect.provide(QemuImg.layer()))
 * ```
 *
 * @since 0.2.0
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as Os from "node:os"
import * as Path from "node:path"
import { type OptionsObject, optionString } from "./CommandLine.js"
import { ImageArgumentError, ImageToolError, ImageToolNotFoundError } from "./ImageError.js"
import { parse as parseExactJson } from "./internal/exactJson.js"
import * as Tool from "./internal/imageTool.js"
import { acquireTempDir } from "./internal/tempDir.js"
import type { ToolExit } from "./internal/toolProcess.js"

/**
 * What a qemu-img call can fail with: the tool failing (with its message), the tool missing, or
 * an argument refused before anything ran.
 *
 * @since 0.2.0
 * @category errors
 */
export type QemuImgFailure = ImageToolError | ImageToolNotFoundError | ImageArgumentError

/**
 * A size in bytes: a number (up to 2^53 - 1), a `bigint` (up to 2^63 - 1), or qemu-img's own
 * notation, `"64M"`, `"1.5G"`, `"512"` (suffixes k, M, G, T, P, E in powers of 1024).
 *
 * @since 0.2.0
 * @category models
 */
export type Size = number | bigint | string

const Bytes = Schema.Union(Schema.Number, Schema.BigIntFromSelf)
const from = <S extends Schema.Schema.Any>(schema: S, key: string) =>
  Schema.propertySignature(schema).pipe(Schema.fromKey(key))
const optionalFrom = <S extends Schema.Schema.Any>(schema: S, key: string) =>
  Schema.optional(schema).pipe(Schema.fromKey(key))
const count = (key: string) => Schema.optionalWith(Schema.Number, { default: () => 0 }).pipe(Schema.fromKey(key))

/**
 * An internal snapshot of an image, as `qemu-img info` lists it.
 *
 * @since 0.2.0
 * @category models
 */
export const SnapshotInfo = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  vmStateSize: from(Bytes, "vm-state-size"),
  dateSec: from(Bytes, "date-sec"),
  dateNsec: from(Bytes, "date-nsec"),
  vmClockSec: from(Bytes, "vm-clock-sec"),
  vmClockNsec: from(Bytes, "vm-clock-nsec"),
  icount: Schema.optional(Bytes)
})

/**
 * The decoded form of {@link SnapshotInfo}.
 *
 * @since 0.2.0
 * @category models
 */
export interface SnapshotInfo extends Schema.Schema.Type<typeof SnapshotInfo> {}

/**
 * What `qemu-img info --output=json` says of an image, in camelCase. Sizes are numbers, or
 * `bigint`s beyond 2^53. `formatSpecific.data` is the format's own record, undecoded.
 *
 * @since 0.2.0
 * @category models
 */
export const ImageInfo = Schema.Struct({
  filename: Schema.String,
  format: Schema.String,
  virtualSize: from(Bytes, "virtual-size"),
  actualSize: optionalFrom(Bytes, "actual-size"),
  clusterSize: optionalFrom(Bytes, "cluster-size"),
  dirtyFlag: optionalFrom(Schema.Boolean, "dirty-flag"),
  encrypted: Schema.optional(Schema.Boolean),
  compressed: Schema.optional(Schema.Boolean),
  backingFilename: optionalFrom(Schema.String, "backing-filename"),
  fullBackingFilename: optionalFrom(Schema.String, "full-backing-filename"),
  backingFilenameFormat: optionalFrom(Schema.String, "backing-filename-format"),
  snapshots: Schema.optionalWith(Schema.Array(SnapshotInfo), { default: () => [] }),
  formatSpecific: optionalFrom(Schema.Struct({ type: Schema.String, data: Schema.Unknown }), "format-specific")
})

/**
 * The decoded form of {@link ImageInfo}.
 *
 * @since 0.2.0
 * @category models
 */
export interface ImageInfo extends Schema.Schema.Type<typeof ImageInfo> {}

/**
 * What `qemu-img check --output=json` reports: counts of corruptions and leaks found (and fixed,
 * when repairing), `checkErrors` for what the check itself could not do.
 *
 * @since 0.2.0
 * @category models
 */
export const CheckResult = Schema.Struct({
  filename: Schema.String,
  format: Schema.String,
  checkErrors: from(Schema.Number, "check-errors"),
  corruptions: count("corruptions"),
  leaks: count("leaks"),
  corruptionsFixed: count("corruptions-fixed"),
  leaksFixed: count("leaks-fixed"),
  imageEndOffset: optionalFrom(Bytes, "image-end-offset"),
  totalClusters: optionalFrom(Bytes, "total-clusters"),
  allocatedClusters: optionalFrom(Bytes, "allocated-clusters"),
  fragmentedClusters: optionalFrom(Bytes, "fragmented-clusters"),
  compressedClusters: optionalFrom(Bytes, "compressed-clusters")
})

/**
 * The decoded form of {@link CheckResult}.
 *
 * @since 0.2.0
 * @category models
 */
export interface CheckResult extends Schema.Schema.Type<typeof CheckResult> {}

/**
 * One extent of `qemu-img map --output=json`: where it is, whether it reads as zeroes, whether it
 * has data, from which layer of the backing chain (`depth`), and where it lies in the file.
 *
 * @since 0.2.0
 * @category models
 */
export const MapEntry = Schema.Struct({
  start: Bytes,
  length: Bytes,
  depth: Schema.Number,
  present: Schema.optional(Schema.Boolean),
  zero: Schema.Boolean,
  data: Schema.Boolean,
  compressed: Schema.optional(Schema.Boolean),
  offset: Schema.optional(Bytes)
})

/**
 * The decoded form of {@link MapEntry}.
 *
 * @since 0.2.0
 * @category models
 */
export interface MapEntry extends Schema.Schema.Type<typeof MapEntry> {}

/**
 * How `qemu-img compare` found two images: identical, or not, with the first offset that differs
 * and qemu-img's sentence about it.
 *
 * @since 0.2.0
 * @category models
 */
export type CompareResult =
  | { readonly identical: true }
  | { readonly identical: false; readonly offset: number | bigint | undefined; readonly detail: string }

/**
 * The option every call takes: its own timeout instead of the service's.
 *
 * @since 0.2.0
 * @category models
 */
export interface CallOptions {
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * What {@link QemuImgService.create} makes: the format, the size (optional with a backing file:
 * the backing file's size), a backing file and its format, and further `-o` options.
 *
 * @since 0.2.0
 * @category models
 */
export interface CreateOptions extends CallOptions {
  readonly format: string
  readonly size?: Size | undefined
  readonly backingFile?: string | undefined
  /** The backing file's format; QEMU 6.1 and later require it with a backing file. */
  readonly backingFormat?: string | undefined
  /** Format options, `-o` (`{ cluster_size: "64k", compat: "1.1" }`); values are escaped. */
  readonly options?: OptionsObject | undefined
}

/**
 * Options of {@link QemuImgService.convert}.
 *
 * @since 0.2.0
 * @category models
 */
export interface ConvertOptions extends CallOptions {
  readonly outputFormat: string
  readonly sourceFormat?: string | undefined
  readonly options?: OptionsObject | undefined
  /** Compress the target (`-c`, for formats that can). */
  readonly compress?: boolean | undefined
  /** Write the target as an overlay of this backing file (`-B`), with its format (`-F`). */
  readonly backingFile?: string | undefined
  readonly backingFormat?: string | undefined
  /** Bytes per second to copy at most (`-r`). */
  readonly rateLimit?: number | undefined
}

/**
 * Options of {@link QemuImgService.scopedImage}: those of `create`, and the file's name inside
 * its temp directory (default `image.<format>`).
 *
 * @since 0.2.0
 * @category models
 */
export interface ScopedImageOptions extends CreateOptions {
  readonly name?: string | undefined
}

/**
 * The qemu-img service. Every path is passed to qemu-img as given (so `json:{...}` and protocol
 * prefixes such as `nbd:` keep their meaning) and after `--`, so that a name starting with `-` is
 * still a file name.
 *
 * @since 0.2.0
 * @category models
 */
export interface QemuImgService {
  readonly create: (path: string, options: CreateOptions) => Effect.Effect<void, QemuImgFailure>
  readonly info: (
    path: string,
    options?: CallOptions & { readonly format?: string | undefined }
  ) => Effect.Effect<ImageInfo, QemuImgFailure>
  /** `info --backing-chain`: the image first, then each backing file in turn. */
  readonly infoChain: (
    path: string,
    options?: CallOptions & { readonly format?: string | undefined }
  ) => Effect.Effect<ReadonlyArray<ImageInfo>, QemuImgFailure>
  /** Checks an image; corruptions and leaks are counted in the result, not failures. */
  readonly check: (
    path: string,
    options?: CallOptions & { readonly format?: string | undefined; readonly repair?: "leaks" | "all" | undefined }
  ) => Effect.Effect<CheckResult, QemuImgFailure>
  /** Compares the guest-visible contents; different images are a result, not a failure. */
  readonly compare: (
    first: string,
    second: string,
    options?: CallOptions & {
      readonly firstFormat?: string | undefined
      readonly secondFormat?: string | undefined
      /** Images of different sizes or allocation differ (`-s`). */
      readonly strict?: boolean | undefined
    }
  ) => Effect.Effect<CompareResult, QemuImgFailure>
  readonly map: (
    path: string,
    options?: CallOptions & { readonly format?: string | undefined }
  ) => Effect.Effect<ReadonlyArray<MapEntry>, QemuImgFailure>
  readonly convert: (source: string, target: string, options: ConvertOptions) => Effect.Effect<void, QemuImgFailure>
  /** Resizes to `size`; a string may be relative (`"+1M"`, `"-64k"`). Shrinking needs `shrink`. */
  readonly resize: (
    path: string,
    size: Size,
    options?: CallOptions & { readonly format?: string | undefined; readonly shrink?: boolean | undefined }
  ) => Effect.Effect<void, QemuImgFailure>
  /** Internal snapshots of an image (`qemu-img snapshot`). */
  readonly snapshot: {
    readonly create: (path: string, name: string, options?: CallOptions) => Effect.Effect<void, QemuImgFailure>
    readonly apply: (path: string, name: string, options?: CallOptions) => Effect.Effect<void, QemuImgFailure>
    readonly delete: (path: string, name: string, options?: CallOptions) => Effect.Effect<void, QemuImgFailure>
    readonly list: (path: string, options?: CallOptions) => Effect.Effect<ReadonlyArray<SnapshotInfo>, QemuImgFailure>
  }
  /** Creates an image in a private temp directory, removed with the scope; returns its path. */
  readonly scopedImage: (options: ScopedImageOptions) => Effect.Effect<string, QemuImgFailure, Scope.Scope>
  /**
   * Creates an overlay of `backing` (default format qcow2; the backing format read from the
   * image when not given) in a private temp directory, removed with the scope; returns its path.
   */
  readonly scopedOverlay: (
    backing: string,
    options?: Omit<ScopedImageOptions, "backingFile" | "format"> & { readonly format?: string | undefined }
  ) => Effect.Effect<string, QemuImgFailure, Scope.Scope>
  /** Runs qemu-img with these arguments; fails unless it exits with 0. Returns its output. */
  readonly run: (
    args: ReadonlyArray<string>,
    options?: CallOptions
  ) => Effect.Effect<{ readonly stdout: string; readonly stderr: string }, QemuImgFailure>
}

/**
 * The qemu-img service tag.
 *
 * @since 0.2.0
 * @category tags
 */
export class QemuImg extends Context.Tag("effect-qemu/QemuImg")<QemuImg, QemuImgService>() {}

/**
 * Options of {@link make}: the binary (default `qemu-img` on `PATH`), the timeout of one call
 * (default 5 minutes), the most output one call may produce (default 64 MiB), and where scoped
 * images are made (default the OS temp directory).
 *
 * @since 0.2.0
 * @category models
 */
export interface QemuImgOptions extends Tool.ToolServiceOptions {
  readonly baseTempDir?: string | undefined
}

interface Context {
  readonly settings: Tool.ToolSettings
  readonly baseTempDir: string | undefined
}

const argError = (operation: string, field: string, detail: string) =>
  new ImageArgumentError({ tool: "qemu-img", operation, field, detail })

const sizePattern = /^\d+(\.\d+)?[bkmgtpe]?$/i
const maxBytes = 2n ** 63n - 1n

/** A size as qemu-img reads it; `relative` allows a leading `+` or `-` (resize). */
const sizeText = (operation: string, size: Size, relative = false): Either.Either<string, ImageArgumentError> => {
  const bad = (detail: string) => Either.left(argError(operation, "size", detail))
  if (typeof size === "number") {
    return Number.isSafeInteger(size) && size >= 0
      ? Either.right(String(size))
      : bad(`${size} is not a whole number of bytes from 0 to 2^53 - 1 (use a bigint for more)`)
  }
  if (typeof size === "bigint") {
    return size >= 0n && size <= maxBytes ? Either.right(size.toString()) : bad(`${size} is not from 0 to 2^63 - 1`)
  }
  const unsigned = relative && /^[+-]/.test(size) ? size.slice(1) : size
  return sizePattern.test(unsigned)
    ? Either.right(size)
    : bad(`"${size}" is not a size such as 1048576, "64M" or "1.5G"${relative ? " (or +/- one)" : ""}`)
}

const formatOptions = (operation: string, options: OptionsObject): Either.Either<string, ImageArgumentError> =>
  Either.mapLeft(
    optionString(options, { option: "-o" }),
    (error) => argError(operation, `options${error.path.length > 0 ? `.${error.path}` : ""}`, error.detail)
  )

const formatArgs = (format: string | undefined, flag = "-f"): ReadonlyArray<string> =>
  format === undefined ? [] : [flag, format]

/** Runs qemu-img and fails unless it exits with one of `accept`. */
const runChecked = (
  context: Context,
  operation: string,
  args: ReadonlyArray<string>,
  options: CallOptions & { readonly accept?: ReadonlyArray<number> } = {}
): Effect.Effect<ToolExit, QemuImgFailure> =>
  Effect.flatMap(
    Tool.callTimeout(context.settings, operation, options.timeout),
    (timeout) => Tool.runChecked(context.settings, operation, args, { timeout, accept: options.accept ?? [0] })
  )

/** Decodes qemu-img's JSON output with exact integers. */
const decodeOutput = <A, I>(
  context: Context,
  operation: string,
  args: ReadonlyArray<string>,
  exit: ToolExit,
  schema: Schema.Schema<A, I>
): Effect.Effect<A, ImageToolError> => {
  const output = (detail: string) => Tool.outputError(context.settings, operation, args, exit, detail)
  let json: unknown
  try {
    json = parseExactJson(exit.stdout)
  } catch (error) {
    return Effect.fail(output(`printed output that is not JSON: ${String(error)}`))
  }
  return Either.match(Schema.decodeUnknownEither(schema)(json), {
    onLeft: (error) => Effect.fail(output(`printed JSON of another shape than expected: ${error.message}`)),
    onRight: Effect.succeed
  })
}

/** Checks the paths (and other free-text arguments) a call names. */
const checkPaths = (context: Context, operation: string, paths: Record<string, string | undefined>) =>
  Effect.forEach(
    Object.entries(paths).filter((entry): entry is [string, string] => entry[1] !== undefined),
    ([field, value]) => Tool.checkText(context.settings, operation, field, value),
    { discard: true }
  )

const create = (context: Context) => (path: string, options: CreateOptions): Effect.Effect<void, QemuImgFailure> =>
  Effect.gen(function*() {
    const op = "create"
    yield* checkPaths(context, op, {
      path,
      format: options.format,
      backingFile: options.backingFile,
      backingFormat: options.backingFormat
    })
    const args = ["create", "-q", "-f", options.format]
    if (options.backingFile !== undefined) args.push("-b", options.backingFile)
    args.push(...formatArgs(options.backingFormat, "-F"))
    if (options.options !== undefined) args.push("-o", yield* formatOptions(op, options.options))
    args.push("--", path)
    if (options.size !== undefined) args.push(yield* sizeText(op, options.size))
    yield* runChecked(context, op, args, options)
  })

const infoArgs = (path: string, format: string | undefined, chain: boolean) => [
  "info",
  "--output=json",
  ...(chain ? ["--backing-chain"] : []),
  ...formatArgs(format),
  "--",
  path
]

const info = (context: Context) =>
(
  path: string,
  options: CallOptions & { readonly format?: string | undefined } = {}
): Effect.Effect<ImageInfo, QemuImgFailure> =>
  Effect.gen(function*() {
    yield* checkPaths(context, "info", { path, format: options.format })
    const args = infoArgs(path, options.format, false)
    const exit = yield* runChecked(context, "info", args, options)
    return yield* decodeOutput(context, "info", args, exit, ImageInfo)
  })

const infoChain = (context: Context) =>
(
  path: string,
  options: CallOptions & { readonly format?: string | undefined } = {}
): Effect.Effect<ReadonlyArray<ImageInfo>, QemuImgFailure> =>
  Effect.gen(function*() {
    yield* checkPaths(context, "info", { path, format: options.format })
    const args = infoArgs(path, options.format, true)
    const exit = yield* runChecked(context, "info", args, options)
    return yield* decodeOutput(context, "info", args, exit, Schema.Array(ImageInfo))
  })

// qemu-img check exits with 2 when it found corruptions and 3 for leaks only, and still reports.
const checkExits = [0, 2, 3]

const check = (context: Context) =>
(
  path: string,
  options: CallOptions & { readonly format?: string | undefined; readonly repair?: "leaks" | "all" | undefined } = {}
): Effect.Effect<CheckResult, QemuImgFailure> =>
  Effect.gen(function*() {
    yield* checkPaths(context, "check", { path, format: options.format })
    if (options.repair !== undefined && options.repair !== "leaks" && options.repair !== "all") {
      return yield* Effect.fail(argError("check", "repair", `expected "leaks" or "all", got ${String(options.repair)}`))
    }
    const repair = options.repair === undefined ? [] : ["-r", options.repair]
    const args = ["check", "--output=json", ...repair, ...formatArgs(options.format), "--", path]
    const exit = yield* runChecked(context, "check", args, { ...options, accept: checkExits })
    return yield* decodeOutput(context, "check", args, exit, CheckResult)
  })

const mismatchOffset = /offset (\d+)/i

const compare = (context: Context) =>
(
  first: string,
  second: string,
  options: CallOptions & {
    readonly firstFormat?: string | undefined
    readonly secondFormat?: string | undefined
    readonly strict?: boolean | undefined
  } = {}
): Effect.Effect<CompareResult, QemuImgFailure> =>
  Effect.gen(function*() {
    const { firstFormat, secondFormat } = options
    yield* checkPaths(context, "compare", { first, second, firstFormat, secondFormat })
    const args = ["compare", ...formatArgs(firstFormat), ...formatArgs(secondFormat, "-F")]
    if (options.strict === true) args.push("-s")
    args.push("--", first, second)
    // 0: identical; 1: different; 2 and up: the comparison failed.
    const exit = yield* runChecked(context, "compare", args, { ...options, accept: [0, 1] })
    if (exit.exitCode === 0) return { identical: true } as const
    const detail = exit.stdout.trim()
    const offset = mismatchOffset.exec(detail)?.[1]
    const exact = offset === undefined ? undefined : BigInt(offset)
    return {
      identical: false,
      offset: exact === undefined || exact > BigInt(Number.MAX_SAFE_INTEGER) ? exact : Number(exact),
      detail
    } as const
  })

const map = (context: Context) =>
(
  path: string,
  options: CallOptions & { readonly format?: string | undefined } = {}
): Effect.Effect<ReadonlyArray<MapEntry>, QemuImgFailure> =>
  Effect.gen(function*() {
    yield* checkPaths(context, "map", { path, format: options.format })
    const args = ["map", "--output=json", ...formatArgs(options.format), "--", path]
    const exit = yield* runChecked(context, "map", args, options)
    return yield* decodeOutput(context, "map", args, exit, Schema.Array(MapEntry))
  })

const convert =
  (context: Context) =>
  (source: string, target: string, options: ConvertOptions): Effect.Effect<void, QemuImgFailure> =>
    Effect.gen(function*() {
      const op = "convert"
      const { backingFile, backingFormat, outputFormat, sourceFormat } = options
      yield* checkPaths(context, op, { source, target, outputFormat, sourceFormat, backingFile, backingFormat })
      const args = ["convert", ...formatArgs(sourceFormat), "-O", outputFormat]
      if (options.compress === true) args.push("-c")
      if (options.rateLimit !== undefined) {
        if (!Number.isSafeInteger(options.rateLimit) || options.rateLimit <= 0) {
          return yield* Effect.fail(argError(op, "rateLimit", "give a positive whole number of bytes per second"))
        }
        args.push("-r", String(options.rateLimit))
      }
      if (backingFile !== undefined) args.push("-B", backingFile, ...formatArgs(backingFormat, "-F"))
      if (options.options !== undefined) args.push("-o", yield* formatOptions(op, options.options))
      args.push("--", source, target)
      yield* runChecked(context, op, args, options)
    })

const resize = (context: Context) =>
(
  path: string,
  size: Size,
  options: CallOptions & { readonly format?: string | undefined; readonly shrink?: boolean | undefined } = {}
): Effect.Effect<void, QemuImgFailure> =>
  Effect.gen(function*() {
    yield* checkPaths(context, "resize", { path, format: options.format })
    const text = yield* sizeText("resize", size, true)
    const args = ["resize", "-q", ...formatArgs(options.format), ...(options.shrink === true ? ["--shrink"] : [])]
    yield* runChecked(context, "resize", [...args, "--", path, text], options)
  })

const snapshotAction =
  (context: Context, flag: "-c" | "-a" | "-d") =>
  (path: string, name: string, options: CallOptions = {}): Effect.Effect<void, QemuImgFailure> =>
    Effect.zipRight(
      checkPaths(context, "snapshot", { path, name }),
      runChecked(context, "snapshot", ["snapshot", "-q", flag, name, "--", path], options)
    )

const snapshot = (context: Context): QemuImgService["snapshot"] => ({
  create: snapshotAction(context, "-c"),
  apply: snapshotAction(context, "-a"),
  delete: snapshotAction(context, "-d"),
  list: (path, options) => Effect.map(info(context)(path, options), (image) => image.snapshots)
})

const imageName = (options: ScopedImageOptions): Either.Either<string, ImageArgumentError> => {
  const name = options.name ?? `image.${options.format}`
  return name.length === 0 || name.includes("/") || name === "." || name === ".." || name.includes("\0")
    ? Either.left(argError("create", "name", `"${name}" is not a plain file name`))
    : Either.right(name)
}

const scopedImage =
  (context: Context) => (options: ScopedImageOptions): Effect.Effect<string, QemuImgFailure, Scope.Scope> =>
    Effect.gen(function*() {
      const name = yield* imageName(options)
      const base = context.baseTempDir ?? Os.tmpdir()
      const dir = yield* acquireTempDir(
        base,
        "img",
        (cause) => argError("create", "baseTempDir", `cannot create a temp directory in ${base}: ${String(cause)}`)
      )
      const path = Path.join(dir, name)
      yield* create(context)(path, options)
      return path
    })

const scopedOverlay = (context: Context) =>
(
  backing: string,
  options: Omit<ScopedImageOptions, "backingFile" | "format"> & { readonly format?: string | undefined } = {}
): Effect.Effect<string, QemuImgFailure, Scope.Scope> =>
  Effect.gen(function*() {
    yield* checkPaths(context, "create", { backingFile: backing })
    // qemu-img reads a relative backing file from the overlay's directory: name it absolutely.
    const absolute = backing.includes(":") && !backing.startsWith("/") ? backing : Path.resolve(backing)
    const backingFormat = options.backingFormat ?? (yield* info(context)(absolute, { timeout: options.timeout })).format
    return yield* scopedImage(context)({
      ...options,
      format: options.format ?? "qcow2",
      backingFile: absolute,
      backingFormat
    })
  })

const runRaw = (context: Context) =>
(
  args: ReadonlyArray<string>,
  options: CallOptions = {}
): Effect.Effect<{ readonly stdout: string; readonly stderr: string }, QemuImgFailure> =>
  Effect.gen(function*() {
    const nul = args.findIndex((arg) => arg.includes("\0"))
    if (nul >= 0) {
      return yield* Effect.fail(argError("run", `args.${nul}`, "a NUL character cannot be passed to a program"))
    }
    const exit = yield* runChecked(context, "run", args, options)
    return { stdout: exit.stdout, stderr: exit.stderr }
  })

/**
 * Makes the qemu-img service. Nothing runs until a call; a bad option fails here.
 *
 * @since 0.2.0
 * @category constructors
 */
export const make = (options: QemuImgOptions = {}): Effect.Effect<QemuImgService, ImageArgumentError> =>
  Effect.map(Tool.toolSettings("qemu-img", options, { timeout: Duration.minutes(5) }), (settings) => {
    const context: Context = { settings, baseTempDir: options.baseTempDir }
    return {
      create: create(context),
      info: info(context),
      infoChain: infoChain(context),
      check: check(context),
      compare: compare(context),
      map: map(context),
      convert: convert(context),
      resize: resize(context),
      snapshot: snapshot(context),
      scopedImage: scopedImage(context),
      scopedOverlay: scopedOverlay(context),
      run: runRaw(context)
    }
  })

/**
 * A layer of the qemu-img service.
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = (options: QemuImgOptions = {}): Layer.Layer<QemuImg, ImageArgumentError> =>
  Layer.effect(QemuImg, make(options))
