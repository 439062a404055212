/**
 * A small Linux guest for the tests that go inside a VM: Debian's cloud kernel, a static busybox,
 * the virtio drivers (console, net, block, from the kernel package, with what they depend on) and
 * QEMU's guest agent (`qemu-guest-agent` with the shared libraries it needs), in an initramfs.
 *
 * Its init mounts /proc, /sys and /dev, loads the virtio modules in dependency order, gives eth0
 * the address QEMU's user networking expects (10.0.2.15/24, gateway 10.0.2.2) when there is a NIC,
 * starts the guest agent on the `org.qemu.guest_agent.0` virtio-serial port when there is one (and
 * again if it dies), and runs a fake `login:` (user root, password
 * "secret") on ttyS0.
 *
 * Built from Debian packages on first use and cached in node_modules/.cache. The agent's shared
 * libraries are the host's, found with `ldd` (the host is the same Debian release; QEMU's own
 * package pulls in the same libraries).
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Zlib from "node:zlib"
import { cpio, debFor, kernelPackage, loginLoop, run } from "./debian.js"

export interface LinuxGuest {
  readonly kernel: string
  readonly initrd: string
}

/** Bump when the archive's content changes: the cache is keyed by it. */
const version = "v1"
const cacheRoot = Path.resolve(import.meta.dirname, "../../node_modules/.cache/effect-qemu-linux-guest")

/** The drivers init loads; their dependencies are found in the kernel package. */
const wantedModules = ["virtio_pci", "virtio_console", "virtio_net", "virtio_blk"]

type Entry = { readonly name: string; readonly mode: number; readonly data?: Uint8Array }

/** A module's name as the kernel spells it (dashes are underscores). */
const moduleName = (file: string) => Path.basename(file).replace(/\.ko(\.xz|\.zst|\.gz)?$/, "").replaceAll("-", "_")

const listFiles = (directory: string): Array<string> =>
  Fs.readdirSync(directory, { recursive: true, encoding: "utf8" }).map((file) => Path.join(directory, file))

/** A module file's bytes, decompressed when the package ships it compressed (insmod takes plain ELF). */
const readModule = (file: string): Buffer => {
  if (file.endsWith(".ko.gz")) return Zlib.gunzipSync(Fs.readFileSync(file))
  const tool = file.endsWith(".ko.xz") ? "xz" : file.endsWith(".ko.zst") ? "zstd" : undefined
  if (tool === undefined) return Fs.readFileSync(file)
  return ChildProcess.execFileSync(tool, ["-dc", file], { maxBuffer: 256 * 1024 * 1024 })
}

/** The `depends=` field of a module's `.modinfo` section (the package ships no modules.dep). */
const modinfoDepends = (data: Buffer): Array<string> => {
  const start = data.indexOf("\0depends=")
  if (start === -1) return []
  const end = data.indexOf(0, start + 1)
  const value = data.subarray(start + "\0depends=".length, end).toString("latin1")
  return value.split(",").filter((name) => name.length > 0).map((name) => name.replaceAll("-", "_"))
}

/** The wanted modules and their dependencies, each after what it depends on. */
const resolveModules = (modulesDir: string): Array<{ readonly name: string; readonly data: Buffer }> => {
  const files = new Map(
    listFiles(modulesDir).filter((file) => /\.ko(\.\w+)?$/.test(file)).map((file) => [moduleName(file), file] as const)
  )
  const ordered: Array<{ name: string; data: Buffer }> = []
  const visiting = new Set<string>()
  const visit = (name: string) => {
    if (ordered.some((module) => module.name === name) || visiting.has(name)) return
    const file = files.get(name)
    if (file === undefined) throw new Error(`module ${name} is not in ${modulesDir}`)
    visiting.add(name)
    const data = readModule(file)
    for (const dependency of modinfoDepends(data)) visit(dependency)
    ordered.push({ name, data })
  }
  for (const name of wantedModules) visit(name)
  return ordered
}

/** The shared libraries `ldd` lists for a binary, with the dynamic loader: [path in the guest, host file]. */
const sharedLibraries = (binary: string): Array<string> => {
  const output = run("ldd", [binary])
  const missing = output.split("\n").filter((line) => line.includes("not found"))
  if (missing.length > 0) {
    throw new Error(
      `the host lacks libraries of ${binary} (install qemu-system-x86's dependencies):\n${missing.join("\n")}`
    )
  }
  return [...output.matchAll(/(?:=> )?(\/\S+) \(0x/g)].map((match) => match[1])
}

const directories = (paths: ReadonlyArray<string>): Array<Entry> => {
  const all = new Set<string>()
  for (const path of paths) {
    for (let dir = Path.posix.dirname(path); dir !== "." && dir !== "/"; dir = Path.posix.dirname(dir)) all.add(dir)
  }
  return [...all].sort().map((name) => ({ name, mode: 0o40755 }))
}

const file = (name: string, data: Uint8Array | string, mode = 0o100755): Entry => ({
  name,
  mode,
  data: typeof data === "string" ? Buffer.from(data) : data
})

/** `qemu-ga` runs /sbin/shutdown (-h -P|-H|-r +0 message); busybox's need no init to act on. */
const shutdownScript = `#!/bin/sh
sync
for arg in "$@"; do
  case "$arg" in
    -r) exec reboot -f ;;
    -H) exec halt -f ;;
  esac
done
exec poweroff -f
`

const osRelease = `ID=effect-qemu-guest
NAME="effect-qemu test guest"
PRETTY_NAME="effect-qemu test guest (busybox)"
VERSION_ID=1
`

const init = (modules: ReadonlyArray<string>) =>
  `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
hostname linuxguest
for m in ${modules.join(" ")}; do insmod /lib/modules/$m.ko || echo "insmod $m failed"; done
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
fi
agent_port() {
  for port in /sys/class/virtio-ports/*; do
    if [ -e "$port/name" ] && [ "$(cat "$port/name")" = org.qemu.guest_agent.0 ] && [ -c "/dev/\${port##*/}" ]; then
      echo "/dev/\${port##*/}"
      return 0
    fi
  done
  return 1
}
if grep -qs 0x0003 /sys/bus/virtio/devices/*/device; then
  (
    tries=0
    until dev=$(agent_port); do
      tries=$((tries + 1))
      [ $tries -gt 200 ] && exit 0
      sleep 0.05
    done
    mkdir -p /dev/virtio-ports /run/qga
    ln -sf "$dev" /dev/virtio-ports/org.qemu.guest_agent.0
    while true; do qemu-ga -m virtio-serial -p "$dev" -t /run/qga -f /run/qemu-ga.pid; sleep 1; done
  ) </dev/null >/dev/null 2>&1 &
fi
echo "linux guest up"
${loginLoop("linuxguest")}`

/** The agent, its libraries and the loader, at the paths the binary asks for. */
const agentEntries = (work: string): Array<Entry> => {
  run("dpkg-deb", ["-x", debFor("qemu-guest-agent", work), Path.join(work, "qga")])
  const binary = Path.join(work, "qga", "usr", "sbin", "qemu-ga")
  const libraries = sharedLibraries(binary)
  return [
    ...directories(libraries),
    ...libraries.map((library) => file(library.slice(1), Fs.readFileSync(library))),
    file("sbin/qemu-ga", Fs.readFileSync(binary))
  ]
}

/** The initramfs, with the kernel package already extracted in `work`/kernel. */
const archive = (work: string): Buffer => {
  const modulesRoot = Path.join(work, "kernel", "lib", "modules")
  const modules = resolveModules(Path.join(modulesRoot, Fs.readdirSync(modulesRoot)[0]))
  run("dpkg-deb", ["-x", debFor("busybox-static", work), Path.join(work, "busybox")])
  const agent = agentEntries(work)
  const names = ["bin", "sbin", "lib", "lib/modules", "etc", "proc", "sys", "dev", "run", "tmp", "root"]
  const agentNames = new Set(agent.map((entry) => entry.name))
  return cpio([
    ...names.filter((name) => !agentNames.has(name)).map((name) => ({
      name,
      mode: name === "root" ? 0o40700 : 0o40755
    })),
    ...agent,
    file("bin/busybox", Fs.readFileSync(Path.join(work, "busybox", "bin", "busybox"))),
    ...modules.map((module) => file(`lib/modules/${module.name}.ko`, module.data, 0o100644)),
    file("sbin/shutdown", shutdownScript),
    file("etc/os-release", osRelease, 0o100644),
    file("init", init(modules.map((module) => module.name)))
  ])
}

const build = (directory: string): LinuxGuest => {
  const work = Fs.mkdtempSync(Path.join(directory, "build-"))
  try {
    run("dpkg-deb", ["-x", debFor(kernelPackage(), work), Path.join(work, "kernel")])
    const boot = Path.join(work, "kernel", "boot")
    const vmlinuz = Fs.readdirSync(boot).find((name) => name.startsWith("vmlinuz-"))
    if (vmlinuz === undefined) throw new Error(`no vmlinuz in the kernel package`)
    const kernel = Path.join(directory, "vmlinuz")
    const initrd = Path.join(directory, "initrd.gz")
    const suffix = `.${process.pid}.tmp`
    Fs.copyFileSync(Path.join(boot, vmlinuz), kernel + suffix)
    Fs.writeFileSync(initrd + suffix, Zlib.gzipSync(archive(work)))
    Fs.renameSync(kernel + suffix, kernel)
    Fs.renameSync(initrd + suffix, initrd)
    return { kernel, initrd }
  } finally {
    Fs.rmSync(work, { recursive: true, force: true })
  }
}

/** The guest's kernel and initramfs, built once and cached. */
export const linuxGuest: Effect.Effect<LinuxGuest> = Effect.sync(() => {
  const directory = Path.join(cacheRoot, version)
  const kernel = Path.join(directory, "vmlinuz")
  const initrd = Path.join(directory, "initrd.gz")
  if (Fs.existsSync(kernel) && Fs.existsSync(initrd)) return { kernel, initrd }
  Fs.mkdirSync(directory, { recursive: true })
  return build(directory)
})

/** QEMU arguments that boot the guest with its console on COM1 (no NIC unless `net` is given). */
export const linuxGuestArgs = (
  guest: LinuxGuest,
  options: { readonly net?: ReadonlyArray<string> } = {}
): ReadonlyArray<string> => [
  "-M",
  "pc",
  "-m",
  "256",
  "-kernel",
  guest.kernel,
  "-initrd",
  guest.initrd,
  "-append",
  "console=ttyS0 panic=-1 quiet",
  "-no-reboot",
  ...(options.net ?? ["-nic", "none"])
]
