// iotests 141: a node with a block job on it cannot be deleted until the job is gone. Script
// style: the transcript is compared with test/iotests/141.out (update it with
// EFFECT_QEMU_UPDATE_REFERENCE=1).
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Machine from "../../src/Machine.js"
import { Job, Transcript } from "../../src/testing/index.js"
import { imgfmt, iotests, tools } from "./kit.js"

/**
 * Adds drv0, starts the job, checks that drv0 cannot be deleted while it runs (once ready, for
 * jobs that get ready), cancels it softly and deletes drv0 once the job is gone.
 */
const testBlockjob = (
  t: Transcript.Transcript,
  vm: Machine.MachineService,
  image: string,
  job: readonly [command: string, args: Record<string, unknown>],
  expect: { readonly ready: boolean; readonly end: "BLOCK_JOB_CANCELLED" | "BLOCK_JOB_COMPLETED" }
) =>
  Effect.gen(function*() {
    const file = { driver: "file", filename: image }
    yield* t.execute("blockdev-add", { "node-name": "drv0", driver: imgfmt, file })
    const handle = yield* Job.start(vm, job[0], job[1] as never, { transcript: t })
    yield* expect.ready ? t.waitEvent("BLOCK_JOB_READY") : handle.waitFor("running")
    const busy = yield* t.execute("blockdev-del", { "node-name": "drv0" })
    assert.property(busy, "error")
    const outcome = yield* handle.cancel({ force: false })
    assert.strictEqual(Option.getOrThrow(outcome.finalEvent).event, expect.end)
    const deleted = yield* t.execute("blockdev-del", { "node-name": "drv0" })
    assert.deepStrictEqual(deleted, { return: {} })
  })

iotests("141", (it) => {
  it.scoped("block jobs keep their nodes from being deleted", () =>
    Effect.gen(function*() {
      const [img, io] = yield* tools
      const b = yield* img.scopedImage({ format: imgfmt, size: "1M", name: `b.${imgfmt}` })
      const m = yield* img.scopedOverlay(b, { format: imgfmt, backingFormat: imgfmt, size: "1M", name: `m.${imgfmt}` })
      const t = yield* img.scopedOverlay(m, { format: imgfmt, backingFormat: imgfmt, size: "1M", name: `t.${imgfmt}` })
      const o = Path.join(Path.dirname(t), `o.${imgfmt}`)
      const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults"] })
      const log = yield* Transcript.make(vm, {
        echo: false,
        filters: Transcript.standardFilters({ imageFormat: imgfmt })
      })
      const section = (title: string) => log.log(`\n=== ${title} ===\n`)
      const qemuIoLogged = (image: string, command: string) =>
        Effect.flatMap(io.run(image, command, { format: imgfmt }), (output) => log.log(output.split("\n")[0]))
      const target = { "job-id": "job0", device: "drv0", target: o, format: imgfmt, sync: "none" }

      yield* section("Testing drive-backup")
      yield* testBlockjob(log, vm, t, ["drive-backup", target], { ready: false, end: "BLOCK_JOB_CANCELLED" })
      yield* section("Testing drive-mirror")
      yield* testBlockjob(log, vm, t, ["drive-mirror", target], { ready: true, end: "BLOCK_JOB_COMPLETED" })
      yield* section("Testing active block-commit")
      yield* testBlockjob(log, vm, t, ["block-commit", { "job-id": "job0", device: "drv0" }], {
        ready: true,
        end: "BLOCK_JOB_COMPLETED"
      })
      yield* section("Testing non-active block-commit")
      yield* qemuIoLogged(m, "write 0 1M")
      yield* testBlockjob(log, vm, t, ["block-commit", { "job-id": "job0", device: "drv0", top: m, speed: 1 }], {
        ready: false,
        end: "BLOCK_JOB_CANCELLED"
      })
      yield* section("Testing block-stream")
      yield* qemuIoLogged(b, "write 0 1M")
      yield* testBlockjob(log, vm, t, ["block-stream", { "job-id": "job0", device: "drv0", speed: 1 }], {
        ready: false,
        end: "BLOCK_JOB_CANCELLED"
      })
      yield* log.compare(fileURLToPath(new URL("141.out", import.meta.url)))
    }))
})
