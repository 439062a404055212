/**
 * The shell guest with a network card: its initramfs plus a second archive (the kernel joins
 * concatenated archives) holding virtio_net and the modules it needs, from the same kernel package.
 * {@link netUp} loads them and configures eth0 as QEMU's user networking expects (10.0.2.15/24,
 * gateway 10.0.2.2), so that forwarded ports reach the guest.
 */
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Zlib from "node:zlib"
import * as Machine from "../../src/Machine.js"
import * as Shell from "../../src/Shell.js"
import type { ShellGuest } from "./shellGuest.js"
import { cpio, debFor, kernelPackage, run, shellGuest, shellGuestArgs } from "./shellGuest.js"

const cacheRoot = Path.resolve(import.meta.dirname, "../../node_modules/.cache/effect-qemu-shell-guest")

/** In load order: each module after those it depends on. */
const modules = [
  "drivers/virtio/virtio.ko",
  "drivers/virtio/virtio_ring.ko",
  "drivers/virtio/virtio_pci_legacy_dev.ko",
  "drivers/virtio/virtio_pci_modern_dev.ko",
  "drivers/virtio/virtio_pci.ko",
  "net/core/failover.ko",
  "drivers/net/net_failover.ko",
  "drivers/net/virtio_net.ko"
]

/** A shell command (one line) that loads the NIC's driver and brings eth0 up on QEMU's user network. */
export const netUp = `for m in ${
  modules.map((module) => Path.basename(module, ".ko")).join(" ")
}; do insmod /lib/modules/$m.ko || exit 1; done; ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2`

const build = (directory: string, base: ShellGuest): ShellGuest => {
  const work = Fs.mkdtempSync(Path.join(directory, "build-"))
  try {
    run("dpkg-deb", ["-x", debFor(kernelPackage(), work), Path.join(work, "kernel")])
    const versions = Fs.readdirSync(Path.join(work, "kernel", "lib", "modules"))
    const tree = Path.join(work, "kernel", "lib", "modules", versions[0], "kernel")
    const archive = cpio([
      { name: "lib", mode: 0o40755 },
      { name: "lib/modules", mode: 0o40755 },
      ...modules.map((module) => ({
        name: `lib/modules/${Path.basename(module)}`,
        mode: 0o100644,
        data: Fs.readFileSync(Path.join(tree, module))
      }))
    ])
    const initrd = Path.join(directory, "initrd.gz")
    const temporary = `${initrd}.${process.pid}.tmp`
    Fs.writeFileSync(temporary, Buffer.concat([Fs.readFileSync(base.initrd), Zlib.gzipSync(archive)]))
    Fs.renameSync(temporary, initrd)
    return { kernel: base.kernel, initrd }
  } finally {
    Fs.rmSync(work, { recursive: true, force: true })
  }
}

/** The shell guest's kernel and an initramfs with the NIC's modules, built once and cached. */
export const netGuest: Effect.Effect<ShellGuest> = Effect.flatMap(shellGuest, (base) =>
  Effect.sync(() => {
    const directory = Path.join(cacheRoot, "v1-net")
    const initrd = Path.join(directory, "initrd.gz")
    if (Fs.existsSync(initrd) && Fs.statSync(initrd).mtimeMs >= Fs.statSync(base.initrd).mtimeMs) {
      return { kernel: base.kernel, initrd }
    }
    Fs.mkdirSync(directory, { recursive: true })
    return build(directory, base)
  }))

/** Boots the Linux guest with `ports` forwarded, logs in and brings its network up. */
export const networked = (ports: ReadonlyArray<number>) =>
  Effect.gen(function*() {
    const guest = yield* netGuest
    const vm = yield* Machine.make({ console: {}, ports, args: shellGuestArgs(guest) })
    yield* Shell.login(vm.console, { user: "root", password: "secret", timeout: "60 seconds" })
    const shell = Shell.fromConsole(vm.console)
    yield* shell.sync({ timeout: "20 seconds" })
    const up = yield* shell.run(netUp)
    if (up.exitCode !== 0) return yield* Effect.dieMessage(`bringing the guest's network up failed: ${up.stdout}`)
    return { vm, shell }
  })
