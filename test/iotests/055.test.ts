// iotests 055: drive-backup and blockdev-backup (TestSingleDrive, TestSetSpeed, TestSingleTransaction).
import { assert, describe } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Path from "node:path"
import * as Machine from "../../src/Machine.js"
import { Assert, Job } from "../../src/testing/index.js"
import { debugDrive, drive, imgfmt, iotests, pauseDrive, resumeDrive, tools } from "./kit.js"

const imageLen = 64 * 1024 * 1024
const writes = ["write -P0x5d 0 64k", "write -P0xd5 1M 32k", "write -P0xdc 32M 124k", "write -P0xdc 67043328 64k"]

/** test.img with four patterns, an empty blockdev-target.img, and a VM with both plus an empty drive2. */
const setUp = Effect.gen(function*() {
  const [img, io] = yield* tools
  const test = yield* img.scopedImage({ format: imgfmt, size: imageLen, name: "test.img" })
  yield* io.run(test, writes, { format: imgfmt })
  const blockdevTarget = yield* img.scopedImage({ format: imgfmt, size: imageLen, name: "blockdev-target.img" })
  const target = Path.join(Path.dirname(test), "target.img") // drive-backup creates it
  // drive2 has no medium, as the original's empty CD-ROM.
  const drives = [...yield* debugDrive(0, test), ...yield* drive(1, blockdevTarget), "-drive", "if=none,id=drive2"]
  const vm = yield* Machine.make({ args: ["-M", "none", "-nodefaults", ...drives] })
  return { vm, img, test, target, blockdevTarget }
})

type Setup = Effect.Effect.Success<typeof setUp>

const both = [["drive-backup", (s: Setup) => s.target], ["blockdev-backup", () => "drive1"]] as const

/** A backup command sent as it is, or as the one action of a transaction (TestSingleTransaction). */
const send = (s: Setup, command: string, args: Record<string, unknown>, transaction: boolean) =>
  transaction ? s.vm.raw("transaction", { actions: [{ type: command, data: args }] }) : s.vm.raw(command, args)

/** Starts the backup as `send` does; the job is named after its device. */
const start = (s: Setup, command: string, args: Record<string, unknown>, transaction = false) =>
  transaction
    ? Job.start(s.vm, "transaction", { actions: [{ type: command, data: args }] } as never, { id: "drive0" })
    : Job.start(s.vm, command, args as never)

const fails = (s: Setup, command: string, args: Record<string, unknown>, transaction = false) =>
  Effect.flatMap(send(s, command, args, transaction), (result) => Assert.qmp(result, "error/class", "GenericError"))

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

iotests("055", (it) => {
  const test = (name: string, body: (s: Setup) => Effect.Effect<void, unknown, Scope.Scope>) =>
    it.scoped(name, () => Effect.flatMap(setUp, body))

  for (const [name, transaction] of [["TestSingleDrive", false], ["TestSingleTransaction", true]] as const) {
    describe(name, () => {
      for (const [command, target] of both) {
        test(`cancel ${command}`, (s) =>
          Effect.gen(function*() {
            yield* noActiveJobs(s)
            // Held, so that the job cannot finish before it is cancelled (the original races it).
            yield* pauseDrive(s.vm, "drive0")
            const job = yield* start(s, command, { device: "drive0", target: target(s), sync: "full" }, transaction)
            yield* cancelAndWait(s, job, true)
          }))

        test(`pause ${command}`, (s) =>
          Effect.gen(function*() {
            yield* noActiveJobs(s)
            yield* pauseDrive(s.vm, "drive0")
            const job = yield* start(s, command, { device: "drive0", target: target(s), sync: "full" }, transaction)
            yield* job.pause
            yield* resumeDrive(s.vm, "drive0")
            yield* Effect.sleep("100 millis")
            const jobs = s.vm.raw("query-block-jobs")
            const offset = yield* Effect.flatMap(jobs, (r) => Assert.path(r, "return[0]/offset"))
            yield* Effect.sleep("100 millis")
            yield* Assert.qmp(yield* jobs, "return[0]/offset", offset)
            yield* job.resume
            const outcome = yield* job.wait()
            yield* Assert.qmp(Option.getOrThrow(outcome.finalEvent), "event", "BLOCK_JOB_COMPLETED")
            yield* s.vm.shutdown()
            const image = command === "drive-backup" ? s.target : s.blockdevTarget
            const compared = yield* s.img.compare(s.test, image, { firstFormat: imgfmt, secondFormat: imgfmt })
            assert.isTrue(compared.identical, "target image does not match source after backup")
          }))
      }

      // One VM for the refusals (the original sets one up for each).
      test("medium not found, image not found, invalid format, device not found, target is source", (s) =>
        Effect.forEach(
          [
            ["drive-backup", { device: "drive2", target: s.target, sync: "full" }],
            ["blockdev-backup", { device: "drive2", target: "drive1", sync: "full" }],
            ["drive-backup", { device: "drive0", target: s.target, sync: "full", mode: "existing" }],
            ["drive-backup", { device: "drive0", target: s.target, sync: "full", format: "spaghetti-noodles" }],
            ["drive-backup", { device: "nonexistent", target: s.target, sync: "full" }],
            ["blockdev-backup", { device: "nonexistent", target: "drive0", sync: "full" }],
            ["blockdev-backup", { device: "drive0", target: "nonexistent", sync: "full" }],
            ["blockdev-backup", { device: "nonexistent", target: "nonexistent", sync: "full" }],
            ["blockdev-backup", { device: "drive0", target: "drive0", sync: "full" }]
          ] as const,
          ([command, args]) => fails(s, command, args, transaction),
          { discard: true }
        ))

      if (transaction) {
        test("abort", (s) =>
          Effect.forEach(
            [
              ["drive-backup", { device: "nonexistent", mode: "existing", target: s.target, sync: "full" }],
              ["blockdev-backup", { device: "nonexistent", target: "drive1", sync: "full" }],
              ["blockdev-backup", { device: "drive0", target: "nonexistent", sync: "full" }]
            ] as const,
            ([type, data]) =>
              Effect.gen(function*() {
                const actions = [{ type, data }, { type: "Abort", data: {} }]
                yield* Assert.qmp(yield* s.vm.raw("transaction", { actions }), "error/class", "GenericError")
                yield* noActiveJobs(s)
              }),
            { discard: true }
          ))
      }
    })
  }

  describe("TestSetSpeed", () => {
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
})
