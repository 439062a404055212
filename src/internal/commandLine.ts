/**
 * The library's part of QEMU's command line and the child descriptors it hands QEMU.
 *
 * @internal
 */
import { escape } from "../CommandLine.js"
import type { ResolvedConfig } from "../MachineConfig.js"
import { netArgs } from "./usernet.js"

/** Builds the library's part of the command line (what every QEMU gets: no display, no VGA, the monitor, the console). */
export const baseArgs = (config: ResolvedConfig, monitorChardev: string | undefined, consoleFd: number | undefined) => {
  const args = ["-display", "none", "-vga", "none"]
  if (monitorChardev !== undefined) args.push("-chardev", monitorChardev, "-mon", "chardev=mon,mode=control")
  if (config.machineType !== undefined) args.push("-machine", config.machineType)
  if (config.console !== undefined && consoleFd !== undefined) {
    for (let index = 0; index < config.console.index; index++) args.push("-serial", "null")
    args.push("-chardev", `socket,id=console,fd=${consoleFd}`)
    if (config.console.deviceType === undefined) args.push("-serial", "chardev:console")
    else args.push("-device", `${escape(config.console.deviceType)},chardev=console`)
  }
  if (config.ports !== undefined) args.push(...netArgs(config.ports, config.nicModel ?? "virtio-net-pci"))
  return args
}

/** A virtio-serial port for the guest agent on the socketpair QEMU has as `fd`. */
export const guestAgentArgs = (fd: number) => [
  "-device",
  "virtio-serial,id=qga-serial0",
  "-chardev",
  `socket,id=qga0,fd=${fd}`,
  "-device",
  "virtserialport,bus=qga-serial0.0,chardev=qga0,name=org.qemu.guest_agent.0"
]

/**
 * Hands out QEMU's descriptors from 3 up, in order: socketpairs (`"pipe"`) for the monitor and the
 * console, then the caller's own descriptors for `-add-fd`. `stdio` is what `spawn` takes after
 * stdin, stdout and stderr.
 */
export class ChildFds {
  readonly stdio: Array<"pipe" | number> = []

  /** The child descriptor the next entry will have. */
  get next(): number {
    return 3 + this.stdio.length
  }

  /** A socketpair; returns QEMU's descriptor number for it. */
  pipe(): number {
    const fd = this.next
    this.stdio.push("pipe")
    return fd
  }

  /** Descriptors of the caller's, placed in order from {@link next}. */
  add(fds: ReadonlyArray<number>): void {
    this.stdio.push(...fds)
  }
}
