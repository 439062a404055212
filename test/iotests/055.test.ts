// iotests 055: drive-backup and blockdev-backup (TestSingleDrive, TestSetSpeed, TestSingleTransaction).
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Machine from "../../src/Machine.js"
import { Assert, Job } from "../../src/testing/index.js"
import { debugDrive, drive, imgfmt, pauseDrive, qemuImg, qemuIo, resumeDrive, scratch } from "./kit.js"

const imageLen = 64 * 1024 * 1024

/** test.img with four patterns, an empty blockdev-target.img, and a VM with both plus an empty drive2. */
const setUp = Effect.gen(function*() {
  const { file } = yield* scratch
  const [test, target, blockdevTarget] = [file("test.img"), file("target.img"), file("blockdev-target.img")]
  yield* qemuImg("create", "-f", imgfmt, test, String(imageLen))
  for (
    const write of ["write -P0x5d 0 64k", "write -P0xd5 1M 32k", "write -P0xdc 32M 124k", "write -P0xdc 67043328 64k"]
  ) {
    yield* qemuIo(test, write)
  }
  yield* qemuImg("create", "-f", imgfmt, blockdevTarget, String(imageLen))
  const vm = yield* Machine.make({
    // drive2 has no medium, as the original's empty CD-ROM.
    args: [
      "-M",
      "none",
      "-nodefaults",
      ...debugDrive(0, test),
      ...drive(1, blockdevTarget),
      "-drive",
      "if=none,id=drive2"
    ]
  })
  return { vm, test, target, blockdevTarget }
})

type Setup = Effect.Effect.Success<typeof setUp>

const both = [["drive-backup", (s: Setup) => s.target], ["blockdev-backup", () => "drive1"]] as const

const fails = (s: Setup, command: string, args: Record<string, unknown>) =>
  Effect.flatMap(s.vm.raw(command, args), (result) => Assert.qmp(result, "error/class", "GenericError"))

const noActiveJobs = (s: Setup) => Effect.flatMap(s.vm.raw("query-block-jobs"), (r) => Assert.qmp(r, "return", []))

/** `cancel_and_wait`: block-job-cancel, then the job's end event, which must be about drive0 and a backup. */
const cancelAndWait = (s: Setup, job: Job.Job, resume = false) =>
  Effect.gen(function*() {
    yield* Assert.qmp(yield* s.vm.raw("block-job-cancel", { device: "drive0" }), "return", {})
    if (resume) yield* resumeDrive(s.vm, "drive0")
    const event = Option.getOrThrow((yield* job.wait()).finalEvent)
    yield* Assert.qmp(event, "data/device", "drive0")
    yield* Assert.qmp(event, "data/type", "backup")
    yield* noActiveJobs(s)
  })

const test = (name: string, body: (s: Setup) => Effect.Effect<void, unknown, Scope.Scope>) =>
  it.scopedLive(name, () => Effect.flatMap(setUp, body))

describe("055 TestSingleDrive", () => {
  for (const [command, target] of both) {
    test(`cancel ${command}`, (s) =>
      Effect.gen(function*() {
        yield* noActiveJobs(s)
        // Held, so that the job cannot finish before it is cancelled (the original races it).
        yield* pauseDrive(s.vm, "drive0")
        const job = yield* Job.start(s.vm, command, { device: "drive0", target: target(s), sync: "full" })
        yield* cancelAndWait(s, job, true)
      }))

    test(`pause ${command}`, (s) =>
      Effect.gen(function*() {
        yield* noActiveJobs(s)
        yield* pauseDrive(s.vm, "drive0")
        const job = yield* Job.start(s.vm, command, { device: "drive0", target: target(s), sync: "full" })
        yield* job.pause
        yield* resumeDrive(s.vm, "drive0")
        yield* Effect.sleep("100 millis")
        const offset = yield* Effect.flatMap(s.vm.raw("query-block-jobs"), (r) => Assert.path(r, "return[0]/offset"))
        yield* Effect.sleep("100 millis")
        yield* Assert.qmp(yield* s.vm.raw("query-block-jobs"), "return[0]/offset", offset)
        yield* job.resume
        const outcome = yield* job.wait()
        yield* Assert.qmp(Option.getOrThrow(outcome.finalEvent), "event", "BLOCK_JOB_COMPLETED")
        yield* s.vm.shutdown()
        const image = command === "drive-backup" ? s.target : s.blockdevTarget
        const compared = yield* qemuImg("compare", "-f", imgfmt, "-F", imgfmt, s.test, image)
        assert.include(compared, "Images are identical", "target image does not match source after backup")
      }))
  }

  // One VM for the refusals (the original sets one up for each).
  test("medium not found, image not found, invalid format, device not found, target is source", (s) =>
    Effect.all([
      fails(s, "drive-backup", { device: "drive2", target: s.target, sync: "full" }),
      fails(s, "blockdev-backup", { device: "drive2", target: "drive1", sync: "full" }),
      fails(s, "drive-backup", { device: "drive0", target: s.target, sync: "full", mode: "existing" }),
      fails(s, "drive-backup", { device: "drive0", target: s.target, sync: "full", format: "spaghetti-noodles" }),
      fails(s, "drive-backup", { device: "nonexistent", target: s.target, sync: "full" }),
      fails(s, "blockdev-backup", { device: "nonexistent", target: "drive0", sync: "full" }),
      fails(s, "blockdev-backup", { device: "drive0", target: "nonexistent", sync: "full" }),
      fails(s, "blockdev-backup", { device: "nonexistent", target: "nonexistent", sync: "full" }),
      fails(s, "blockdev-backup", { device: "drive0", target: "drive0", sync: "full" })
    ], { discard: true }))
})

describe("055 TestSetSpeed", () => {
  for (const [command, target] of both) {
    test(`set speed, ${command}`, (s) =>
      Effect.gen(function*() {
        yield* noActiveJobs(s)
        yield* pauseDrive(s.vm, "drive0")
        const job = yield* Job.start(s.vm, command, { device: "drive0", target: target(s), sync: "full" })
        const speedIs = (speed: number) =>
          Effect.gen(function*() {
            const jobs = yield* s.vm.raw("query-block-jobs")
            yield* Assert.qmp(jobs, "return[0]/device", "drive0")
            yield* Assert.qmp(jobs, "return[0]/speed", speed)
          })
        yield* speedIs(0)
        yield* job.setSpeed(8 * 1024 * 1024)
        yield* speedIs(8 * 1024 * 1024)
        yield* cancelAndWait(s, job, true)

        yield* pauseDrive(s.vm, "drive0")
        const again = yield* Job.start(s.vm, command, {
          device: "drive0",
          target: target(s),
          sync: "full",
          speed: 4 * 1024 * 1024
        })
        yield* speedIs(4 * 1024 * 1024)
        yield* cancelAndWait(s, again, true)
      }))

    test(`set speed invalid, ${command}`, (s) =>
      Effect.gen(function*() {
        yield* noActiveJobs(s)
        yield* fails(s, command, { device: "drive0", target: target(s), sync: "full", speed: -1 })
        yield* noActiveJobs(s)
        yield* pauseDrive(s.vm, "drive0")
        const job = yield* Job.start(s.vm, command, { device: "drive0", target: target(s), sync: "full" })
        yield* fails(s, "block-job-set-speed", { device: "drive0", speed: -1 })
        yield* cancelAndWait(s, job, true)
      }))
  }
})

describe("055 TestSingleTransaction", () => {
  const transaction = (s: Setup, ...actions: ReadonlyArray<readonly [string, Record<string, unknown>]>) =>
    s.vm.raw("transaction", { actions: actions.map(([type, data]) => ({ type, data })) })

  for (const [command, target] of both) {
    test(`cancel ${command}`, (s) =>
      Effect.gen(function*() {
        yield* noActiveJobs(s)
        yield* pauseDrive(s.vm, "drive0")
        const job = yield* Job.start(s.vm, "transaction", {
          actions: [{ type: command, data: { device: "drive0", target: target(s), sync: "full" } }]
        } as never, { id: "drive0" })
        yield* cancelAndWait(s, job, true)
      }))
  }

  test("abort", (s) =>
    Effect.gen(function*() {
      const abort = ["Abort", {}] as const
      const missing = { device: "nonexistent", mode: "existing", target: s.target, sync: "full" }
      yield* Assert.qmp(yield* transaction(s, ["drive-backup", missing], abort), "error/class", "GenericError")
      yield* noActiveJobs(s)
      const blockdev = { device: "nonexistent", target: "drive1", sync: "full" }
      yield* Assert.qmp(yield* transaction(s, ["blockdev-backup", blockdev], abort), "error/class", "GenericError")
      yield* noActiveJobs(s)
    }))
})
