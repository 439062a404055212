import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Machine from "../../src/Machine.js"
import * as Job from "../../src/testing/Job.js"
import * as Transcript from "../../src/testing/Transcript.js"
import { noneArgs, tempDir } from "../kit/qemu.js"

/** An empty machine with a 64 MiB null-co source `src` and a null-co target `tgt`. */
const withNodes = Effect.gen(function*() {
  const vm = yield* Machine.make({ args: noneArgs })
  for (const name of ["src", "tgt"]) {
    yield* vm.execute("blockdev-add", { driver: "null-co", "node-name": name, size: 64 * 1024 * 1024 })
  }
  return vm
})

describe("Job", () => {
  it.scopedLive("runs blockdev-create to its end through every status, dismissing the concluded job", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const vm = yield* Machine.make({ args: noneArgs })
      const filename = Path.join(dir, "t.img")
      const outcome = yield* Job.run(vm, "blockdev-create", {
        "job-id": "job0",
        options: { driver: "file", filename, size: 1024 * 1024 }
      })
      assert.strictEqual(outcome.ended, "completed")
      assert.deepStrictEqual(outcome.history, ["created", "running", "waiting", "pending", "concluded", "null"])
      assert.strictEqual(Fs.statSync(filename).size, 1024 * 1024)
      assert.deepStrictEqual(yield* vm.execute("query-jobs"), [])
    }))

  it.scopedLive("fails with JobFailed and QEMU's error text when the job fails", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      const error = yield* Effect.flip(Job.run(vm, "blockdev-create", {
        "job-id": "job0",
        options: { driver: "file", filename: "/nonexistent-dir/t.img", size: 1024 * 1024 }
      }))
      assert.strictEqual(error._tag, "JobFailed")
      if (error._tag !== "JobFailed") return
      assert.match(error.error, /Could not create '\/nonexistent-dir\/t.img': No such file or directory/)
      assert.include(error.history, "aborting")
      assert.deepStrictEqual(yield* vm.execute("query-jobs"), [])
    }))

  it.scopedLive("with a transcript, logs the command, the failure and the dismissal as iotests' run_job", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: noneArgs })
      const log = yield* Transcript.make(vm, { events: (event) => event.event !== "JOB_STATUS_CHANGE" })
      const options = { driver: "file", filename: "/nonexistent-dir/t.img", size: 65536 } as const
      yield* Effect.flip(Job.run(vm, "blockdev-create", { "job-id": "job0", options }, { transcript: log }))
      assert.strictEqual(
        yield* log.text,
        [
          `{"execute": "blockdev-create", "arguments": {"job-id": "job0", "options": {"driver": "file", "filename": "/nonexistent-dir/t.img", "size": 65536}}}`,
          `{"return": {}}`,
          `Job failed: Could not create '/nonexistent-dir/t.img': No such file or directory`,
          `{"execute": "job-dismiss", "arguments": {"id": "job0"}}`,
          `{"return": {}}`,
          ``
        ].join("\n")
      )
    }))

  it.scopedLive("reports a failed block job with BLOCK_JOB_COMPLETED's error", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      yield* vm.execute("blockdev-add", {
        driver: "blkdebug",
        "node-name": "bad",
        image: "tgt",
        "inject-error": [{ event: "pwritev", errno: 5 }]
      } as never)
      const error = yield* Effect.flip(Job.run(vm, "blockdev-backup", {
        "job-id": "b0",
        device: "src",
        target: "bad",
        sync: "full"
      }))
      assert.strictEqual(error._tag, "JobFailed")
      if (error._tag === "JobFailed") assert.strictEqual(error.error, "Input/output error")
    }))

  it.scopedLive("gives the statuses as a stream, from created to null", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const vm = yield* Machine.make({ args: noneArgs })
      const job = yield* Job.start(vm, "blockdev-create", {
        "job-id": "job1",
        options: { driver: "file", filename: Path.join(dir, "s.img"), size: 65536 }
      })
      const collected = yield* Effect.fork(Stream.runCollect(job.statuses))
      const outcome = yield* job.wait()
      const statuses = Chunk.toReadonlyArray(yield* Fiber.join(collected))
      assert.deepStrictEqual(statuses, outcome.history)
      assert.strictEqual(statuses.at(-1), "null")
    }))

  it.scopedLive("waits for READY, then completes a mirror", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      const job = yield* Job.start(vm, "blockdev-mirror", {
        "job-id": "m0",
        device: "src",
        target: "tgt",
        sync: "full"
      })
      const ready = yield* job.waitReady()
      assert.strictEqual(ready.status, "ready")
      const outcome = yield* job.complete()
      assert.strictEqual(outcome.ended, "completed")
      assert.deepStrictEqual(
        outcome.events.map((event) => event.event).filter((name) => name !== "JOB_STATUS_CHANGE"),
        [
          "BLOCK_JOB_READY",
          "BLOCK_JOB_COMPLETED"
        ]
      )
      assert.strictEqual(Option.getOrThrow(outcome.finalEvent).event, "BLOCK_JOB_COMPLETED")
    }))

  it.scopedLive("run completes a mirror when it is ready; a soft cancel of a ready mirror ends it completed", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      const run = yield* Job.run(vm, "blockdev-mirror", { "job-id": "m1", device: "src", target: "tgt", sync: "full" })
      assert.includeMembers([...run.history], ["ready", "concluded", "null"])
      assert.strictEqual(Option.getOrThrow(run.finalEvent).event, "BLOCK_JOB_COMPLETED")
      const job = yield* Job.start(vm, "blockdev-mirror", {
        "job-id": "m2",
        device: "src",
        target: "tgt",
        sync: "full"
      })
      yield* job.waitReady()
      const soft = yield* job.cancel({ force: false })
      assert.strictEqual(soft.ended, "completed")
      assert.notInclude(soft.history, "aborting")
    }))

  it.scopedLive("cancels a throttled job and reports it cancelled", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      const job = yield* Job.start(vm, "blockdev-backup", {
        "job-id": "b1",
        device: "src",
        target: "tgt",
        sync: "full",
        speed: 1
      })
      yield* job.waitFor("running")
      const outcome = yield* job.cancel()
      assert.strictEqual(outcome.ended, "cancelled")
      assert.strictEqual(Option.getOrThrow(outcome.finalEvent).event, "BLOCK_JOB_CANCELLED")
      assert.deepStrictEqual(outcome.history.slice(-3), ["aborting", "concluded", "null"])
    }))

  it.scopedLive("with auto-finalize off, runs beforeFinalize while the job is pending, then finalizes it", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      const job = yield* Job.start(vm, "blockdev-backup", {
        "job-id": "b2",
        device: "src",
        target: "tgt",
        sync: "full",
        "auto-finalize": false,
        "auto-dismiss": false
      })
      const seen: Array<string> = []
      const outcome = yield* job.wait({
        beforeFinalize: Effect.map(job.info, (info) => seen.push(Option.getOrThrow(info).status)).pipe(Effect.orDie)
      })
      assert.deepStrictEqual(seen, ["pending"])
      assert.deepStrictEqual(outcome.history.slice(-3), ["pending", "concluded", "null"])
      assert.strictEqual(outcome.ended, "completed")
    }))

  it.scopedLive("a wait for a status the job never reaches times out with the status it is in", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      const job = yield* Job.start(vm, "blockdev-backup", {
        "job-id": "b3",
        device: "src",
        target: "tgt",
        sync: "full",
        speed: 1
      })
      const error = yield* Effect.flip(job.waitReady({ timeout: "300 millis" }))
      assert.strictEqual(error._tag, "JobTimeout")
      if (error._tag === "JobTimeout") assert.strictEqual(error.status, "running")
      yield* job.cancel()
    }))

  it.scopedLive("a wait for READY fails with JobEnded when the job ends first", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const vm = yield* Machine.make({ args: noneArgs })
      const job = yield* Job.start(vm, "blockdev-create", {
        "job-id": "job2",
        options: { driver: "file", filename: Path.join(dir, "e.img"), size: 65536 }
      })
      const error = yield* Effect.flip(job.waitReady())
      assert.strictEqual(error._tag, "JobEnded")
    }))

  it.scopedLive("with auto-finalize and auto-dismiss on, wait sends nothing and sees the job through to null", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      const log = yield* Transcript.make(vm, { events: () => false })
      const args = { "job-id": "b4", device: "src", target: "tgt", sync: "full" } as const
      const outcome = yield* Job.run(vm, "blockdev-backup", args, { transcript: log })
      // QEMU 7.2 pauses and resumes a backup as it starts: created, running, (paused, running,) waiting...
      assert.strictEqual(outcome.history[0], "created")
      assert.deepStrictEqual(outcome.history.slice(-4), ["waiting", "pending", "concluded", "null"])
      assert.deepStrictEqual((yield* log.text).trimEnd().split("\n").map((line) => JSON.parse(line).execute), [
        "blockdev-backup",
        undefined
      ])
    }))

  it.scopedLive("with auto-dismiss off, the job stays concluded and listed until wait dismisses it", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      const args = { "job-id": "b5", device: "src", target: "tgt", sync: "full", "auto-dismiss": false } as const
      const job = yield* Job.start(vm, "blockdev-backup", args)
      yield* job.waitFor("concluded")
      assert.strictEqual(Option.getOrThrow(yield* job.info).status, "concluded")
      const outcome = yield* job.wait()
      assert.deepStrictEqual(outcome.history.slice(-2), ["concluded", "null"])
      assert.deepStrictEqual(yield* vm.execute("query-jobs"), [])
    }))

  it.scopedLive("with auto-finalize off and auto-dismiss on, wait finalizes at pending and sends no dismiss", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      const log = yield* Transcript.make(vm, { events: () => false })
      const args = { "job-id": "b6", device: "src", target: "tgt", sync: "full", "auto-finalize": false } as const
      const job = yield* Job.start(vm, "blockdev-backup", args, { transcript: log })
      yield* job.waitFor("pending")
      assert.strictEqual(Option.getOrThrow(yield* job.info).status, "pending")
      const outcome = yield* job.wait()
      assert.deepStrictEqual(outcome.history.slice(-3), ["pending", "concluded", "null"])
      const sent = (yield* log.text).trimEnd().split("\n").map((line) => JSON.parse(line).execute)
      assert.deepStrictEqual(sent.filter((name) => name !== undefined), ["blockdev-backup", "job-finalize"])
    }))

  it.scopedLive("cancelWhenPending cancels a job held at pending: it ends cancelled through aborting", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      const args = { "job-id": "b7", device: "src", target: "tgt", sync: "full", "auto-finalize": false } as const
      const job = yield* Job.start(vm, "blockdev-backup", args)
      const outcome = yield* job.wait({ cancelWhenPending: true })
      assert.strictEqual(outcome.ended, "cancelled")
      assert.deepStrictEqual(outcome.history.slice(-4), ["pending", "aborting", "concluded", "null"])
      assert.strictEqual(Option.getOrThrow(outcome.finalEvent).event, "BLOCK_JOB_CANCELLED")
    }))

  it.scopedLive("pause and resume show as paused and running; setSpeed lifts a throttle and the job completes", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      const args = { "job-id": "m8", device: "src", target: "tgt", sync: "full", speed: 1 } as const
      const job = yield* Job.start(vm, "blockdev-mirror", args)
      yield* job.waitFor("running")
      yield* job.pause
      yield* job.waitFor("paused")
      assert.strictEqual(Option.getOrThrow(yield* job.info).status, "paused")
      yield* job.resume
      yield* job.waitFor("running")
      yield* job.setSpeed(0)
      const outcome = yield* job.complete()
      assert.strictEqual(outcome.ended, "completed")
      assert.deepStrictEqual(outcome.history, [
        "created",
        "running",
        "paused",
        "running",
        "ready",
        "waiting",
        "pending",
        "concluded",
        "null"
      ])
    }))

  it.scopedLive("a wait on a job whose QEMU quits fails with QmpDisconnected", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      const args = { "job-id": "b9", device: "src", target: "tgt", sync: "full", speed: 1 } as const
      const job = yield* Job.start(vm, "blockdev-backup", args)
      yield* job.waitFor("running")
      const waiting = yield* Effect.fork(job.wait())
      yield* vm.execute("quit")
      const error = yield* Effect.flip(Fiber.join(waiting))
      assert.strictEqual(error._tag, "QmpDisconnected")
    }))

  it.scopedLive("a timeout that is no positive duration fails with QmpArgumentError, not a defect", () =>
    Effect.gen(function*() {
      const vm = yield* withNodes
      const args = { "job-id": "b10", device: "src", target: "tgt", sync: "full", speed: 1 } as const
      const job = yield* Job.start(vm, "blockdev-backup", args)
      const bad = yield* Effect.flip(job.waitFor("ready", { timeout: "soon" as never }))
      assert.strictEqual(bad._tag, "QmpArgumentError")
      if (bad._tag === "QmpArgumentError") assert.strictEqual(bad.reason, "InvalidOption")
      const negative = yield* Effect.flip(job.wait({ timeout: -5 }))
      assert.strictEqual(negative._tag, "QmpArgumentError")
      assert.strictEqual((yield* job.cancel()).ended, "cancelled")
    }))
})
