/**
 * What the iotests ports share: the image tools as services (QemuImg, QemuIo) for a group of
 * tests, the drives they add (CommandLine), and requests held at blkdebug breakpoints through
 * HMP's `qemu-io` (iotests' `pause_drive`/`resume_drive`).
 */
import { layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as CommandLine from "../../src/CommandLine.js"
import type { MachineService } from "../../src/Machine.js"
import * as QemuImg from "../../src/QemuImg.js"
import * as QemuIo from "../../src/QemuIo.js"

/** The image format the ports run with (iotests' `imgfmt`). */
export const imgfmt = "qcow2"

/** A group of ports on real time, each test given QemuImg and QemuIo: `iotests("040 ...", (it) => ...)`. */
export const iotests = layer(Layer.mergeAll(QemuImg.layer(), QemuIo.layer()), { excludeTestServices: true })

/** Both image tools. */
export const tools = Effect.all([QemuImg.QemuImg, QemuIo.QemuIo])

/** A `-drive` for an image on no device, named `drive<n>` (iotests' `add_drive` with `if=none`). */
export const drive = (index: number, file: string) =>
  CommandLine.drive({ if: "none", id: `drive${index}`, file, format: imgfmt, cache: "writeback" })

/** A drive over blkdebug, so that `pauseDrive` can hold its requests. */
export const debugDrive = (index: number, file: string) => drive(index, `blkdebug::${file}`)

const hmpQemuIo = (vm: MachineService, device: string, command: string) =>
  Effect.flatMap(QemuIo.hmpCommand(device, command), (line) => vm.hmp(line))

/** Holds the drive's reads and writes at blkdebug breakpoints (iotests' `pause_drive`). */
export const pauseDrive = (vm: MachineService, name: string) =>
  Effect.forEach(["read_aio", "write_aio"], (event) => hmpQemuIo(vm, name, `break ${event} bp_${name}`), {
    discard: true
  })

/** Lets the held requests go (iotests' `resume_drive`). */
export const resumeDrive = (vm: MachineService, name: string) =>
  Effect.zipRight(hmpQemuIo(vm, name, `remove_break bp_${name}`), hmpQemuIo(vm, name, `resume bp_${name}`))
