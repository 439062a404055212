// iotests 129: "stop" does not drain block jobs running on a throttled drive.
import { describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Machine from "../../src/Machine.js"
import { Assert } from "../../src/testing/index.js"
import { imgfmt, qemuImg, qemuIo, scratch } from "./kit.js"

/** base <- test with 16 MiB of data (the original writes 128), behind a throttle node limited to 1 KiB/s. */
const setUp = Effect.gen(function*() {
  const { file } = yield* scratch
  const [base, test, target, overlay] = ["base.img", "test.img", "target.img", "overlay.img"].map(file)
  yield* qemuImg("create", "-f", imgfmt, base, "1G")
  yield* qemuImg("create", "-f", imgfmt, test, "-b", base, "-F", imgfmt)
  yield* qemuIo(test, "write -P0x5d 1M 16M")
  const source = `driver=throttle,node-name=source,throttle-group=tg0,file.driver=${imgfmt},file.file.filename=${test}`
  const vm = yield* Machine.make({
    args: [
      "-M",
      "none",
      "-nodefaults",
      "-object",
      "throttle-group,id=tg0,x-bps-total=1024",
      "-drive",
      `if=none,id=drive0,${source}`
    ]
  })
  return { vm, target, overlay }
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

describe("129 TestStopWithBlockJob", () => {
  it.scopedLive("drive-mirror", () =>
    Effect.flatMap(
      setUp,
      ({ target, vm }) =>
        stopWithJob(vm, "drive-mirror", { device: "drive0", target, format: imgfmt, sync: "full", "buf-size": 65536 })
    ))

  it.scopedLive("drive-backup", () =>
    Effect.flatMap(
      setUp,
      ({ target, vm }) => stopWithJob(vm, "drive-backup", { device: "drive0", target, format: imgfmt, sync: "full" })
    ))

  it.scopedLive("block-commit", () =>
    Effect.gen(function*() {
      const { overlay, vm } = yield* setUp
      // An overlay above the source node, so that this is a commit job and not a mirror job.
      yield* qemuImg("create", "-f", imgfmt, overlay, "1G")
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
