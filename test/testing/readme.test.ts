// The README's "Writing VM tests" example, verbatim but for the import paths.
import { assert, it } from "@effect/vitest"
import { Effect } from "effect"
import { Machine } from "../../src/index.js"
import { Assert, Job, Transcript } from "../../src/testing/index.js"

it.scopedLive("a qcow2 image is created, mirrored, and the log matches its reference", () =>
  Effect.gen(function*() {
    const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults"] })
    const log = yield* Transcript.make(vm, {
      filters: Transcript.standardFilters({ testDir: vm.tempDir, imageFormat: "qcow2" }),
      events: (event) => event.event !== "JOB_STATUS_CHANGE" // as iotests' run_job logs
    })
    const filename = `${vm.tempDir}/disk.qcow2`

    // blockdev-create is a job: Job.run takes it to its end and dismisses it (iotests' run_job).
    const file = { driver: "file", filename, size: 0 } as const
    yield* Job.run(vm, "blockdev-create", { "job-id": "create", options: file }, { transcript: log })
    yield* log.execute("blockdev-add", { driver: "file", "node-name": "file", filename })
    const qcow2 = { driver: "qcow2", file: "file", size: 1048576 } as const
    yield* Job.run(vm, "blockdev-create", { "job-id": "format", options: qcow2 }, { transcript: log })
    yield* log.execute("blockdev-add", { driver: "qcow2", "node-name": "disk", file: "file" })
    yield* log.execute("blockdev-add", { driver: "null-co", "node-name": "copy", size: 1048576 })

    // A mirror gets ready, then completes when asked; its statuses are a Stream too (job.statuses).
    const args = { "job-id": "mirror", device: "disk", target: "copy", sync: "full" } as const
    const mirror = yield* Job.start(vm, "blockdev-mirror", args, { transcript: log })
    yield* mirror.waitReady()
    const outcome = yield* mirror.complete()
    assert.strictEqual(outcome.ended, "completed")

    // Path assertions on raw replies (iotests' assert_qmp); a mismatch fails with both values.
    yield* Assert.qmp(yield* vm.raw("query-block-jobs"), "return", [])
    yield* Assert.qmp(yield* vm.raw("query-named-block-nodes"), "return[0]/node-name", "copy")

    // The filtered log against the reference (EFFECT_QEMU_UPDATE_REFERENCE=1 writes it).
    yield* log.compare("test/testing/readme.out")
  }))
