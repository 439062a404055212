import { assert, describe, it, layer } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { ImageArgumentError, ImageToolError, ImageToolNotFoundError } from "../src/ImageError.js"
import { QemuImg } from "../src/index.js"
import * as QemuIo from "../src/QemuIo.js"
import { eventually, isRunning, tempDir } from "./kit/qemu.js"

const scratch = tempDir("effect-qemu-img-test-")

/** The pids of qemu-img processes whose command line mentions `marker`. */
const qemuImgPids = (marker: string): Array<number> =>
  Fs.readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).flatMap((pid) => {
    try {
      const cmdline = Fs.readFileSync(`/proc/${pid}/cmdline`, "utf8")
      return cmdline.startsWith("qemu-img\0") && cmdline.includes(marker) ? [Number(pid)] : []
    } catch {
      return []
    }
  })

/** Sets the refcount of `cluster` in a fresh small qcow2 image (its first refcount block). */
const setRefcount = (path: string, cluster: number, refcount: number) => {
  const fd = Fs.openSync(path, "r+")
  try {
    const header = Buffer.alloc(8)
    Fs.readSync(fd, header, 0, 8, 48)
    const table = Number(header.readBigUInt64BE(0))
    Fs.readSync(fd, header, 0, 8, table)
    const block = Number(header.readBigUInt64BE(0))
    const entry = Buffer.alloc(2)
    entry.writeUInt16BE(refcount)
    Fs.writeSync(fd, entry, 0, 2, block + 2 * cluster)
  } finally {
    Fs.closeSync(fd)
  }
}

layer(QemuImg.layer(), { excludeTestServices: true })("QemuImg", (it) => {
  it.scoped("creates a qcow2 overlay whose info names its backing file and format", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const dir = yield* scratch
      const base = Path.join(dir, "base.raw")
      yield* img.create(base, { format: "raw", size: "1M" })
      const top = Path.join(dir, "top.qcow2")
      yield* img.create(top, { format: "qcow2", backingFile: base, backingFormat: "raw" })
      const info = yield* img.info(top)
      assert.strictEqual(info.format, "qcow2")
      assert.strictEqual(info.virtualSize, 1048576)
      assert.strictEqual(info.backingFilename, base)
      assert.strictEqual(info.fullBackingFilename, base)
      assert.strictEqual(info.backingFilenameFormat, "raw")
      assert.strictEqual(info.dirtyFlag, false)
      assert.strictEqual(info.formatSpecific?.type, "qcow2")
      const chain = yield* img.infoChain(top)
      assert.deepStrictEqual(chain.map((layer) => layer.format), ["qcow2", "raw"])
    }))

  it.scoped("sizes beyond 2^53 come back exact, as bigints", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const dir = yield* scratch
      const big = Path.join(dir, "big.qcow2")
      yield* img.create(big, { format: "qcow2", size: 2n ** 56n, options: { cluster_size: "2M" } })
      const info = yield* img.info(big)
      assert.strictEqual(info.virtualSize, 2n ** 56n)
      // 2^62 + 512 is no double: a number would read as 2^62.
      const odd = 2n ** 62n + 512n
      const nullImage = `json:{"driver":"null-co","size":${odd},"read-zeroes":true}`
      assert.strictEqual((yield* img.info(nullImage)).virtualSize, odd)
      const map = yield* img.map(nullImage)
      assert.strictEqual(map[0].length, odd)
    }))

  it.scoped("a create with an unknown format fails with qemu-img's own message and exit code", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const dir = yield* scratch
      const path = Path.join(dir, "x.img")
      const error = yield* Effect.flip(img.create(path, { format: "bogus", size: "1M" }))
      assert.instanceOf(error, ImageToolError)
      assert.strictEqual(error.reason, "Exit")
      assert.strictEqual(error.exitCode, 1)
      assert.include(error.stderr, "Unknown file format 'bogus'")
      assert.include(error.message, "Unknown file format 'bogus'")
      assert.isFalse(Fs.existsSync(path))
    }))

  it.scoped("a size qemu-img cannot read is refused before anything runs, naming the field", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const dir = yield* scratch
      const path = Path.join(dir, "x.img")
      for (const size of ["64 M", "-1", 1.5, -1, 2n ** 63n]) {
        const error = yield* Effect.flip(img.create(path, { format: "raw", size }))
        assert.instanceOf(error, ImageArgumentError)
        assert.strictEqual(error.field, "size")
      }
      const comma = yield* Effect.flip(img.create(path, { format: "qcow2", size: "1M", options: { "a,b": 1 } }))
      assert.instanceOf(comma, ImageArgumentError)
      assert.strictEqual(comma.field, "options.a,b")
      assert.isFalse(Fs.existsSync(path))
    }))

  it.scoped("check counts leaks and corruptions in its result, and repairs leaks", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const dir = yield* scratch
      const clean = Path.join(dir, "clean.qcow2")
      yield* img.create(clean, { format: "qcow2", size: "1M" })
      const ok = yield* img.check(clean)
      assert.deepStrictEqual([ok.corruptions, ok.leaks, ok.checkErrors], [0, 0, 0])
      const leaky = Path.join(dir, "leaky.qcow2")
      yield* img.create(leaky, { format: "qcow2", size: "1M" })
      Fs.truncateSync(leaky, 6 * 65536)
      setRefcount(leaky, 5, 1)
      assert.strictEqual((yield* img.check(leaky)).leaks, 1)
      assert.strictEqual((yield* img.check(leaky, { repair: "leaks" })).leaksFixed, 1)
      assert.strictEqual((yield* img.check(leaky)).leaks, 0)
      const corrupt = Path.join(dir, "corrupt.qcow2")
      yield* img.create(corrupt, { format: "qcow2", size: "1M" })
      setRefcount(corrupt, 0, 0)
      const bad = yield* img.check(corrupt)
      assert.strictEqual(bad.corruptions, 1)
      assert.strictEqual(bad.format, "qcow2")
    }))

  it.scoped("compare says identical or where the images differ; a missing image is an error", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const io = yield* QemuIo.make()
      const dir = yield* scratch
      const a = Path.join(dir, "a.qcow2")
      const b = Path.join(dir, "b.raw")
      yield* img.create(a, { format: "qcow2", size: "1M" })
      yield* img.create(b, { format: "raw", size: "1M" })
      assert.deepStrictEqual(yield* img.compare(a, b), { identical: true })
      yield* io.run(a, "write -P 0x11 64k 4k", { format: "qcow2" })
      const different = yield* img.compare(a, b, { firstFormat: "qcow2", secondFormat: "raw" })
      assert.isFalse(different.identical)
      if (!different.identical) {
        assert.strictEqual(different.offset, 65536)
        assert.include(different.detail, "Content mismatch at offset 65536")
      }
      const missing = yield* Effect.flip(img.compare(a, Path.join(dir, "nope.raw")))
      assert.instanceOf(missing, ImageToolError)
      assert.strictEqual(missing.exitCode, 2)
      assert.include(missing.stderr, "nope.raw")
    }))

  it.scoped("map lists typed extents: data where written, zeroes elsewhere", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const io = yield* QemuIo.make()
      const dir = yield* scratch
      const path = Path.join(dir, "m.qcow2")
      yield* img.create(path, { format: "qcow2", size: "1M" })
      yield* io.run(path, "write -P 0xab 0 64k", { format: "qcow2" })
      const map = yield* img.map(path)
      assert.deepStrictEqual(
        map.map((entry) => [entry.start, entry.length, entry.data, entry.zero]),
        [[0, 65536, true, false], [65536, 983040, false, true]]
      )
      assert.strictEqual(typeof map[0].offset, "number")
    }))

  it.scoped("convert copies the contents to another format; resize grows, and shrinks only when asked", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const io = yield* QemuIo.make()
      const dir = yield* scratch
      const source = Path.join(dir, "s.qcow2")
      const target = Path.join(dir, "t.raw")
      yield* img.create(source, { format: "qcow2", size: "1M" })
      yield* io.run(source, "write -P 0x5a 4k 8k", { format: "qcow2" })
      yield* img.convert(source, target, { outputFormat: "raw" })
      assert.deepStrictEqual(yield* img.compare(source, target), { identical: true })
      yield* img.resize(target, "+1M", { format: "raw" })
      assert.strictEqual((yield* img.info(target, { format: "raw" })).virtualSize, 2 * 1048576)
      const refused = yield* Effect.flip(img.resize(source, "512k", { format: "qcow2" }))
      assert.instanceOf(refused, ImageToolError)
      assert.include(refused.stderr, "--shrink")
      yield* img.resize(source, "512k", { format: "qcow2", shrink: true })
      assert.strictEqual((yield* img.info(source)).virtualSize, 524288)
    }))

  it.scoped("snapshots: create, list, apply brings the old data back, delete removes it", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const io = yield* QemuIo.make()
      const dir = yield* scratch
      const path = Path.join(dir, "snap.qcow2")
      yield* img.create(path, { format: "qcow2", size: "1M" })
      yield* io.run(path, "write -P 0xa1 0 4k", { format: "qcow2" })
      yield* img.snapshot.create(path, "first")
      yield* io.run(path, "write -P 0xb2 0 4k", { format: "qcow2" })
      const listed = yield* img.snapshot.list(path)
      assert.deepStrictEqual(listed.map((snapshot) => snapshot.name), ["first"])
      yield* img.snapshot.apply(path, "first")
      yield* io.run(path, "read -P 0xa1 0 4k", { format: "qcow2" })
      yield* img.snapshot.delete(path, "first")
      assert.deepStrictEqual(yield* img.snapshot.list(path), [])
      const missing = yield* Effect.flip(img.snapshot.apply(path, "first"))
      assert.instanceOf(missing, ImageToolError)
    }))

  it.effect("a scoped image and its overlay are removed with their scope", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const paths = yield* Effect.scoped(Effect.gen(function*() {
        const base = yield* img.scopedImage({ format: "raw", size: "1M" })
        const top = yield* img.scopedOverlay(base)
        const info = yield* img.info(top)
        assert.strictEqual(info.backingFilename, base)
        assert.strictEqual(info.backingFilenameFormat, "raw")
        assert.isTrue(Fs.existsSync(base) && Fs.existsSync(top))
        return [base, top]
      }))
      for (const path of paths) {
        assert.isFalse(Fs.existsSync(path))
        assert.isFalse(Fs.existsSync(Path.dirname(path)))
      }
    }))

  it.effect("a scoped image whose create fails leaves no directory behind", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const before = Fs.readdirSync(process.env.TMPDIR ?? "/tmp").filter((e) => e.startsWith("effect-qemu-img-p"))
      const exit = yield* Effect.exit(Effect.scoped(img.scopedImage({ format: "bogus", size: "1M" })))
      assert.isTrue(Exit.isFailure(exit))
      const after = Fs.readdirSync(process.env.TMPDIR ?? "/tmp").filter((e) => e.startsWith("effect-qemu-img-p"))
      assert.deepStrictEqual(after, before)
    }))

  it.scoped("interrupting a long convert kills qemu-img before the interruption returns", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const dir = yield* scratch
      const source = yield* slowSource(img, dir)
      const target = Path.join(dir, "interrupted.raw")
      const fiber = yield* Effect.fork(img.convert(source, target, { outputFormat: "raw", rateLimit: 65536 }))
      yield* eventually("qemu-img convert started", () => qemuImgPids(target).length > 0, 10_000)
      const [pid] = qemuImgPids(target)
      yield* Fiber.interrupt(fiber)
      assert.isFalse(isRunning(pid))
    }))

  it.scoped("a convert past its timeout fails with reason Timeout and leaves no qemu-img running", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.QemuImg
      const dir = yield* scratch
      const source = yield* slowSource(img, dir)
      const target = Path.join(dir, "timed-out.raw")
      const error = yield* Effect.flip(
        img.convert(source, target, { outputFormat: "raw", rateLimit: 65536, timeout: "300 millis" })
      )
      assert.instanceOf(error, ImageToolError)
      assert.strictEqual(error.reason, "Timeout")
      assert.deepStrictEqual(qemuImgPids(target), [])
    }))
})

/** A raw image of 4 MiB of data: about a minute to convert at 64 KiB/s. */
const slowSource = (img: QemuImg.QemuImgService, dir: string) =>
  Effect.gen(function*() {
    const path = Path.join(dir, "slow.raw")
    Fs.writeFileSync(path, Buffer.alloc(4 * 1048576, 0x5a))
    yield* img.info(path, { format: "raw" })
    return path
  })

describe("QemuImg without the binary", () => {
  it.live("a binary that does not exist fails with ImageToolNotFoundError", () =>
    Effect.gen(function*() {
      const img = yield* QemuImg.make({ binary: "/nonexistent/qemu-img" })
      const error = yield* Effect.flip(img.info("/tmp/whatever.qcow2"))
      assert.instanceOf(error, ImageToolNotFoundError)
      assert.strictEqual(error.binary, "/nonexistent/qemu-img")
      assert.include(error.message, "qemu-img not found")
    }))

  it.effect("a bad timeout is refused when the service is made", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(QemuImg.make({ timeout: 0 }))
      assert.instanceOf(error, ImageArgumentError)
      assert.strictEqual(error.field, "timeout")
    }))
})
