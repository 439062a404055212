/**
 * A small Linux guest with a busybox shell on its serial console, for the Shell tests: Debian's
 * cloud kernel and a static busybox in an initramfs whose init mounts /proc, /sys and /dev and runs
 * a fake `login:` (user root, password "secret") that starts `sh` on ttyS0, again after each exit.
 *
 * Built from Debian packages on first use (the apt cache is used when it holds them, `apt-get
 * download` otherwise) and cached in node_modules/.cache. The cpio archive is written here, so
 * nothing beyond dpkg-deb and apt-get is needed.
 */
import * as Effect from "effect/Effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Zlib from "node:zlib"

export interface ShellGuest {
  readonly kernel: string
  readonly initrd: string
}

const cacheRoot = Path.resolve(import.meta.dirname, "../../node_modules/.cache/effect-qemu-shell-guest")
const aptCache = "/var/cache/apt/archives"

export const run = (command: string, args: ReadonlyArray<string>, cwd?: string): string =>
  ChildProcess.execFileSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })

/** The .deb of `name` (a concrete package), from the apt cache or downloaded into `into`. */
export const debFor = (name: string, into: string): string => {
  const cached = Fs.existsSync(aptCache)
    ? Fs.readdirSync(aptCache).find((file) => file.startsWith(`${name}_`) && file.endsWith(".deb"))
    : undefined
  if (cached !== undefined) return Path.join(aptCache, cached)
  run("apt-get", ["download", "-qq", name], into)
  const downloaded = Fs.readdirSync(into).find((file) => file.startsWith(`${name}_`) && file.endsWith(".deb"))
  if (downloaded === undefined) throw new Error(`apt-get download ${name} left no .deb in ${into}`)
  return Path.join(into, downloaded)
}

/** The concrete kernel package behind the `linux-image-cloud-amd64` metapackage. */
export const kernelPackage = (): string => {
  const cached = Fs.existsSync(aptCache)
    ? Fs.readdirSync(aptCache).find((file) => /^linux-image-\d.*-cloud-amd64_.*\.deb$/.test(file))
    : undefined
  if (cached !== undefined) return cached.split("_")[0]
  const depends = run("apt-cache", ["depends", "linux-image-cloud-amd64"])
  const match = /Depends: (linux-image-\S+-cloud-amd64)/.exec(depends)
  if (match === null) throw new Error(`no kernel package behind linux-image-cloud-amd64:\n${depends}`)
  return match[1]
}

/**
 * The fake `login:` both guests run on the console: user root, password "secret" starts `sh`,
 * again after each exit.
 */
export const loginLoop = (host: string): string =>
  `while true; do
  printf '${host} login: '
  read -r user
  printf 'Password: '
  read -r password
  if [ "$user" = root ] && [ "$password" = secret ]; then
    setsid cttyhack sh -l
  else
    echo "Login incorrect"
  fi
done
`

const init = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "shell guest up"
${loginLoop("shellguest")}`

/** A newc cpio archive of the given entries (directories, files, symlinks). */
export const cpio = (entries: ReadonlyArray<{ name: string; mode: number; data?: Uint8Array }>): Buffer => {
  const parts: Array<Buffer> = []
  const pad = (length: number) => Buffer.alloc((4 - (length % 4)) % 4)
  const hex = (value: number) => value.toString(16).padStart(8, "0")
  let inode = 1
  for (const entry of [...entries, { name: "TRAILER!!!", mode: 0 }]) {
    const data = entry.data ?? new Uint8Array(0)
    const name = Buffer.from(`${entry.name}\0`)
    const header = "070701" +
      [inode++, entry.mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length, 0].map(hex).join("")
    parts.push(Buffer.from(header), name, pad(110 + name.length), Buffer.from(data), pad(data.length))
  }
  return Buffer.concat(parts)
}

const build = (directory: string): ShellGuest => {
  const work = Fs.mkdtempSync(Path.join(directory, "build-"))
  try {
    const kernelDeb = debFor(kernelPackage(), work)
    run("dpkg-deb", ["-x", kernelDeb, Path.join(work, "kernel")])
    const boot = Path.join(work, "kernel", "boot")
    const vmlinuz = Fs.readdirSync(boot).find((file) => file.startsWith("vmlinuz-"))
    if (vmlinuz === undefined) throw new Error(`no vmlinuz in ${kernelDeb}`)
    run("dpkg-deb", ["-x", debFor("busybox-static", work), Path.join(work, "busybox")])
    const busybox = Fs.readFileSync(Path.join(work, "busybox", "bin", "busybox"))
    const archive = cpio([
      { name: "bin", mode: 0o40755 },
      { name: "bin/busybox", mode: 0o100755, data: busybox },
      { name: "init", mode: 0o100755, data: Buffer.from(init) },
      { name: "proc", mode: 0o40755 },
      { name: "sys", mode: 0o40755 },
      { name: "dev", mode: 0o40755 },
      { name: "root", mode: 0o40700 }
    ])
    const kernel = Path.join(directory, "vmlinuz")
    const initrd = Path.join(directory, "initrd.gz")
    Fs.copyFileSync(Path.join(boot, vmlinuz), `${kernel}.tmp`)
    Fs.writeFileSync(`${initrd}.tmp`, Zlib.gzipSync(archive))
    Fs.renameSync(`${kernel}.tmp`, kernel)
    Fs.renameSync(`${initrd}.tmp`, initrd)
    return { kernel, initrd }
  } finally {
    Fs.rmSync(work, { recursive: true, force: true })
  }
}

/** The guest's kernel and initramfs, built once and cached. */
export const shellGuest: Effect.Effect<ShellGuest> = Effect.sync(() => {
  const directory = Path.join(cacheRoot, "v1")
  const kernel = Path.join(directory, "vmlinuz")
  const initrd = Path.join(directory, "initrd.gz")
  if (Fs.existsSync(kernel) && Fs.existsSync(initrd)) return { kernel, initrd }
  Fs.mkdirSync(directory, { recursive: true })
  return build(directory)
})

/** QEMU arguments that boot the guest with its console on COM1. */
export const shellGuestArgs = (guest: ShellGuest): ReadonlyArray<string> => [
  "-M",
  "pc",
  "-m",
  "256",
  "-display",
  "none",
  "-kernel",
  guest.kernel,
  "-initrd",
  guest.initrd,
  "-append",
  "console=ttyS0 panic=-1 quiet",
  "-no-reboot"
]
