/**
 * What the iotests ports share: images made with qemu-img and written or checked with qemu-io
 * (both run as programs, as iotests' `qemu_img` and `qemu_io` do), and a scratch directory.
 */
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import * as Path from "node:path"
import type { MachineService } from "../../src/Machine.js"
import { tempDir } from "../kit/qemu.js"

/** The image format the ports run with (iotests' `imgfmt`). */
export const imgfmt = "qcow2"

/** Runs qemu-img; a failure fails the test with its stderr. */
export const qemuImg = (...args: ReadonlyArray<string>): Effect.Effect<string> =>
  Effect.sync(() => execFileSync("qemu-img", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }))

/** Runs qemu-io with `-c command` on an image and returns its output. */
export const qemuIo = (image: string, command: string, format = imgfmt): Effect.Effect<string> =>
  Effect.sync(() => execFileSync("qemu-io", ["-f", format, "-c", command, image], { encoding: "utf8" }))

/** Whether `read -P pattern offset length` finds the pattern (iotests check "verification failed"). */
export const holds = (image: string, command: string, format = imgfmt): Effect.Effect<boolean> =>
  Effect.map(qemuIo(image, command, format), (output) => !output.includes("verification failed"))

/** A scratch directory and a way to name files in it. */
export const scratch = Effect.map(tempDir("effect-qemu-iotests-"), (dir) => ({
  dir,
  file: (name: string) => Path.join(dir, name)
}))

/** A `-drive` for an image on no device, named `drive<n>`, as iotests' `add_drive` with `if=none`. */
export const drive = (index: number, file: string, extra = ""): ReadonlyArray<string> => [
  "-drive",
  `if=none,id=drive${index},file=${file},format=${imgfmt},cache=writeback${extra}`
]

/** A drive over blkdebug, so that its requests can be held (`pauseDrive`) and let go (`resumeDrive`). */
export const debugDrive = (index: number, file: string): ReadonlyArray<string> => drive(index, `blkdebug::${file}`)

/** Holds the drive's reads and writes at blkdebug breakpoints (iotests' `pause_drive`). */
export const pauseDrive = (vm: MachineService, name: string) =>
  Effect.forEach(["read_aio", "write_aio"], (event) => vm.hmp(`qemu-io ${name} "break ${event} bp_${name}"`), {
    discard: true
  })

/** Lets the held requests go (iotests' `resume_drive`). */
export const resumeDrive = (vm: MachineService, name: string) =>
  Effect.zipRight(vm.hmp(`qemu-io ${name} "remove_break bp_${name}"`), vm.hmp(`qemu-io ${name} "resume bp_${name}"`))
