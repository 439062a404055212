// iotests 040: live block commit (TestSingleDrive, TestSetSpeed, TestActiveZeroLengthImage).
import { assert } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Machine from "../../src/Machine.js"
import { Assert, Job } from "../../src/testing/index.js"
import { drive, imgfmt, iotests, tools } from "./kit.js"

/** backing (raw) <- mid <- test, 0xab in the first half of backing, 0xef in mid's second half. */
const setUp = (imageLen: number) =>
  Effect.gen(function*() {
    const [img, io] = yield* tools
    const backing = yield* img.scopedImage({ format: "raw", size: imageLen, name: "backing.img" })
    const mid = yield* img.scopedOverlay(backing, { format: imgfmt, backingFormat: "raw", name: "mid.img" })
    const test = yield* img.scopedOverlay(mid, { format: imgfmt, backingFormat: imgfmt, name: "test.img" })
    if (imageLen > 0) {
      yield* io.run(backing, "write -P 0xab 0 524288", { format: "raw" })
      yield* io.run(mid, "write -P 0xef 524288 524288", { format: imgfmt })
    }
    const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults", ...yield* drive(0, test)] })
    return { vm, io, backing, mid, test, imageLen }
  })

type Setup = Effect.Effect.Success<ReturnType<typeof setUp>>

const noActiveJobs = (vm: Machine.MachineService) =>
  Effect.flatMap(vm.raw("query-block-jobs"), (r) => Assert.qmp(r, "return", []))

/** Commits, completing at READY, and checks BLOCK_JOB_COMPLETED as `wait_for_complete` does. */
const runCommit = (s: Setup, args: { top?: string; base?: string }, needReady = false) =>
  Effect.gen(function*() {
    yield* noActiveJobs(s.vm)
    const job = yield* Job.start(s.vm, "block-commit", { device: "drive0", ...args })
    const outcome = yield* job.wait({ completeWhenReady: true })
    const completed = Option.getOrThrow(outcome.finalEvent)
    yield* Assert.qmp(completed, "event", "BLOCK_JOB_COMPLETED")
    yield* Assert.qmp(completed, "data/type", "commit")
    yield* Assert.qmp(completed, "data/device", "drive0")
    yield* Assert.qmpAbsent(completed, "data/error")
    yield* Assert.qmp(completed, "data/offset", (completed.data as { len: number }).len)
    if (needReady) assert.include(outcome.history, "ready", "Expecting BLOCK_JOB_READY before BLOCK_JOB_COMPLETED")
    yield* noActiveJobs(s.vm)
    yield* s.vm.shutdown()
    // A pattern that does not verify fails with PatternMismatchError.
    if (s.imageLen > 0) yield* s.io.run(s.backing, ["read -P 0xab 0 524288", "read -P 0xef 524288 524288"])
  })

// QEMU 7.2's wording; the 2012 test said "Base '...' not found".
const notInChain = (name: string) => `Can't find '${name}' in the backing chain`

/** The command fails with `errorClass` (and `desc`, when given). */
const refused = (s: Setup, args: Record<string, unknown>, errorClass: string, desc?: string) =>
  Effect.gen(function*() {
    yield* noActiveJobs(s.vm)
    const result = yield* s.vm.raw("block-commit", args)
    yield* Assert.qmp(result, "error/class", errorClass)
    if (desc !== undefined) yield* Assert.qmp(result, "error/desc", desc)
  })

for (const imageLen of [1024 * 1024, 0]) {
  iotests(`040 ${imageLen === 0 ? "TestActiveZeroLengthImage" : "TestSingleDrive"}`, (it) => {
    const test = (name: string, body: (s: Setup) => Effect.Effect<void, unknown, Scope.Scope>) =>
      it.scoped(name, () => Effect.flatMap(setUp(imageLen), body))

    test("commit", (s) => runCommit(s, { top: s.mid, base: s.backing }))
    test("top is active", (s) => runCommit(s, { top: s.test, base: s.backing }, true))
    test("top is default active", (s) => runCommit(s, {}))
    // One VM for the five refusals (the original sets one up for each).
    test("device not found, top same base, top invalid, base invalid, top and base reversed", (s) =>
      Effect.all([
        refused(s, { device: "nonexistent", top: s.mid }, "DeviceNotFound"),
        refused(s, { device: "drive0", top: s.backing, base: s.backing }, "GenericError", notInChain(s.backing)),
        refused(
          s,
          { device: "drive0", top: "badfile", base: s.backing },
          "GenericError",
          "Top image file badfile not found"
        ),
        refused(s, { device: "drive0", top: s.mid, base: "badfile" }, "GenericError", notInChain("badfile")),
        refused(s, { device: "drive0", top: s.backing, base: s.mid }, "GenericError", notInChain(s.mid))
      ], { discard: true }))
  })
}

iotests("040 TestSetSpeed", (it) => {
  it.scoped("set speed", () =>
    Effect.gen(function*() {
      const s = yield* setUp(1024 * 1024)
      yield* noActiveJobs(s.vm)
      // The original pauses the drive so that the job is still listed; a job left pending does that too.
      const job = yield* Job.start(s.vm, "block-commit", {
        device: "drive0",
        top: s.mid,
        speed: 1024 * 1024,
        "auto-finalize": false
      })
      const jobs = yield* s.vm.raw("query-block-jobs")
      yield* Assert.qmp(jobs, "return[0]/device", "drive0")
      yield* Assert.qmp(jobs, "return[0]/speed", 1024 * 1024)
      yield* job.cancel()
    }))
})
