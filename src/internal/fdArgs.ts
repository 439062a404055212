/**
 * Launch-time file descriptors: which parent descriptors go into QEMU's `stdio` slots and the
 * `-add-fd` options that name them by the numbers QEMU sees.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import { FdPassError } from "../QmpError.js"

/**
 * A descriptor of this process to hand to QEMU at launch, placed in fd set `set`.
 *
 * @since 0.1.0
 * @category models
 */
export interface LaunchFd {
  /** The descriptor in this (the parent) process. */
  readonly fd: number
  /** The fd set QEMU adds it to, later named as `/dev/fdset/<set>`. */
  readonly set: number
  /** A free-form label shown by `query-fdsets`. */
  readonly opaque?: string | undefined
  /** Further `-add-fd` suboptions, `key=value[,key=value]`, for QEMU versions that know more than fd, set, opaque. */
  readonly opts?: string | undefined
}

/**
 * What to give `child_process.spawn`: `stdio` entries to append after the ones already used,
 * and the `-add-fd` arguments naming the child's descriptor numbers.
 *
 * @since 0.1.0
 * @category models
 */
export interface FdArgs {
  /** Parent descriptors, in order; Node dup2s entry `i` to child descriptor `firstChildFd + i`. */
  readonly stdio: ReadonlyArray<number>
  /** `["-add-fd", "fd=…,set=…", …]`. */
  readonly args: ReadonlyArray<string>
  /** The descriptor number each entry of `fds` has in QEMU. */
  readonly childFds: ReadonlyArray<number>
}

export { FdPassError } from "../QmpError.js"

const isDescriptor = (n: number): boolean => Number.isSafeInteger(n) && n >= 0

// Set by fdArgs itself; QEMU would take the last of two `fd=`, silently pointing at another slot.
const reservedKeys = new Set(["fd", "set", "opaque"])

const checkOpts = (index: number, opts: string): FdPassError | undefined => {
  for (const part of opts.split(",")) {
    const eq = part.indexOf("=")
    if (eq <= 0) {
      return new FdPassError({ index, field: "opts", value: opts, reason: `"${part}" is not key=value` })
    }
    const key = part.slice(0, eq)
    if (reservedKeys.has(key)) {
      return new FdPassError({
        index,
        field: "opts",
        value: opts,
        reason: `"${key}" is set from the entry's own field; remove it from opts`
      })
    }
  }
  return undefined
}

/**
 * Maps launch-time descriptors onto child descriptor slots starting at `firstChildFd` (the
 * length of the `stdio` array already built, at least 3) and builds their `-add-fd` options.
 *
 * @since 0.1.0
 * @category constructors
 * @example
 * import { fdArgs } from "effect-qemu/internal/fdArgs"
 *
 * // stdio so far: stdin, stdout, stderr, QMP socket (3): the first free slot is 4
 * const result = fdArgs({ fds: [{ fd: diskFd, set: 1, opaque: "disk" }], firstChildFd: 4 })
 * // Right({ stdio: [diskFd], args: ["-add-fd", "fd=4,set=1,opaque=disk"], childFds: [4] })
 */
export const fdArgs = (options: {
  readonly fds: ReadonlyArray<LaunchFd>
  readonly firstChildFd: number
}): Either.Either<FdArgs, FdPassError> => {
  const { fds, firstChildFd } = options
  if (!Number.isSafeInteger(firstChildFd) || firstChildFd < 3) {
    return Either.left(
      new FdPassError({
        index: -1,
        field: "firstChildFd",
        value: firstChildFd,
        reason: "must be an integer of at least 3: QEMU refuses to add stdin, stdout or stderr to an fd set"
      })
    )
  }
  const seen = new Map<number, number>()
  const stdio: Array<number> = []
  const args: Array<string> = []
  const childFds: Array<number> = []
  for (let index = 0; index < fds.length; index++) {
    const { fd, opaque, opts, set } = fds[index]
    if (!isDescriptor(fd)) {
      return Either.left(
        new FdPassError({ index, field: "fd", value: fd, reason: "must be an open descriptor: an integer >= 0" })
      )
    }
    const earlier = seen.get(fd)
    if (earlier !== undefined) {
      return Either.left(
        new FdPassError({
          index,
          field: "fd",
          value: fd,
          reason: `already given as fds[${earlier}]; pass each descriptor once, or dup it first`
        })
      )
    }
    seen.set(fd, index)
    if (!isDescriptor(set)) {
      return Either.left(new FdPassError({ index, field: "set", value: set, reason: "must be an integer >= 0" }))
    }
    if (opaque !== undefined && opaque.includes(",")) {
      return Either.left(
        new FdPassError({
          index,
          field: "opaque",
          value: opaque,
          reason: "must not contain a comma: QEMU would read the rest as another option"
        })
      )
    }
    const optsError = opts === undefined || opts === "" ? undefined : checkOpts(index, opts)
    if (optsError !== undefined) return Either.left(optsError)

    const childFd = firstChildFd + index
    const parts = [`fd=${childFd}`, `set=${set}`]
    if (opaque !== undefined) parts.push(`opaque=${opaque}`)
    if (opts !== undefined && opts.length > 0) parts.push(opts)
    stdio.push(fd)
    args.push("-add-fd", parts.join(","))
    childFds.push(childFd)
  }
  return Either.right({ stdio, args, childFds })
}
