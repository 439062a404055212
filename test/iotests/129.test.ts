// iotests 129: "stop" does not drain block jobs running on a throttled drive.
import * as Effect from "effect/Effect"
import * as Path from "node:path"
import * as CommandLine from "../../src/CommandLine.js"
import * as Machine from "../../src/Machine.js"
import { Assert } from "../../src/testing/index.js"
import { imgfmt, iotests, tools } from "./kit.js"

/** base <- test with 128 MiB of data, behind a throttle node limited to 1 KiB/s. */
const setUp = Effect.gen(function*() {
  const [img, io] = yield* tools
  const base = yield* img.scopedImage({ format: imgfmt, size: "1G", name: "base.img" })
  const test = yield* img.scopedOverlay(base, { format: imgfmt, backingFormat: imgfmt, name: "test.img" })
  yield* io.run(test, "write -P0x5d 1M 128M", { format: imgfmt })
  const vm = yield* Machine.make({
    args: [
      "-M",
      "none",
      "-nodefaults",
      ...yield* CommandLine.object({ "qom-type": "throttle-group", id: "tg0", "x-bps-total": 1024 }),
      ...yield* CommandLine.drive({
        if: "none",
        id: "drive0",
        driver: "throttle",
        "node-name": "source",
        "throttle-group": "tg0",
        file: { driver: imgfmt, file: { filename: test } }
      })
    ]
  })
  return { vm, img, target: Path.join(Path.dirname(test), "target.img") }
})

/** Starts the job, stops the VM: the job must still be running and not ready. */
const stopWithJob = (vm: Machine.MachineService, command: string, args: Record<string, unknown>) =>
  Effect.gen(function*() {
    yield* Assert.qmp(yield* vm.raw(command, args), "return", {})
    yield* Assert.qmp(yield* vm.raw("stop"), "return", {})
    const jobs = yield* vm.raw("query-block-jobs")
    yield* Assert.qmp(jobs, "return[0]/status", "running")
    yield* Assert.qmp(jobs, "return[0]/ready", false)
  })

iotests("129 TestStopWithBlockJob", (it) => {
  it.scoped("drive-mirror", () =>
    Effect.flatMap(
      setUp,
      ({ target, vm }) =>
        stopWithJob(vm, "drive-mirror", { device: "drive0", target, format: imgfmt, sync: "full", "buf-size": 65536 })
    ))

  it.scoped("drive-backup", () =>
    Effect.flatMap(
      setUp,
      ({ target, vm }) => stopWithJob(vm, "drive-backup", { device: "drive0", target, format: imgfmt, sync: "full" })
    ))

  it.scoped("block-commit", () =>
    Effect.gen(function*() {
      const { img, vm } = yield* setUp
      // An overlay above the source node, so that this is a commit job and not a mirror job.
      const overlay = yield* img.scopedImage({ format: imgfmt, size: "1G", name: "overlay.img" })
      const added = yield* vm.raw("blockdev-add", {
        "node-name": "overlay",
        driver: imgfmt,
        file: { driver: "file", filename: overlay }
      })
      yield* Assert.qmp(added, "return", {})
      yield* Assert.qmp(yield* vm.raw("blockdev-snapshot", { node: "source", overlay: "overlay" }), "return", {})
      yield* stopWithJob(vm, "block-commit", { device: "drive0", "top-node": "source" })
    }))
})
