/**
 * Debian packages into an initramfs, for the test guests: a package's `.deb` from the apt cache or
 * `apt-get download`, the concrete cloud kernel package, a newc cpio archive written here (nothing
 * beyond dpkg-deb and apt-get is needed), and the fake `login:` the guest runs on its console.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"

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
 * The fake `login:` the guest runs on the console: user root, password "secret" starts `sh`,
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
