import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Machine from "../../src/Machine.js"
import * as Migration from "../../src/testing/Migration.js"

const vmArgs = (memory: string, incoming: boolean) => [
  "-M",
  "none",
  "-nodefaults",
  "-m",
  memory,
  ...(incoming ? ["-incoming", "defer"] : [])
]

const pair = (destinationMemory = "16M") =>
  Effect.all([
    Machine.make({ args: vmArgs("16M", false), name: "mig-src" }),
    Machine.make({ args: vmArgs(destinationMemory, true), name: "mig-dst" })
  ])

describe("Migration", () => {
  for (const transport of ["unix", "fd", "file"] as const) {
    it.scopedLive(`migrates over ${transport}, both sides completed and the destination running`, () =>
      Effect.gen(function*() {
        const [source, destination] = yield* pair()
        const result = yield* Migration.migrate(source, destination, { transport })
        assert.strictEqual(result.source.statuses.at(-1), "completed")
        assert.include(result.source.statuses, "active")
        assert.strictEqual(result.destination.statuses.at(-1), "completed")
        assert.strictEqual((result.info as { status: string }).status, "completed")
        assert.strictEqual((yield* source.execute("query-status")).status, "postmigrate")
        assert.isTrue((yield* destination.execute("query-status")).running)
      }))
  }

  it.scopedLive("fails with MigrationFailed naming the side that failed (a destination with other RAM)", () =>
    Effect.gen(function*() {
      const [source, destination] = yield* pair("32M")
      const error = yield* Effect.flip(Migration.migrate(source, destination))
      assert.strictEqual(error._tag, "MigrationFailed")
      if (error._tag !== "MigrationFailed") return
      // The destination refuses the stream; the source may see the broken connection first.
      assert.include(["destination", "source"], error.side)
      assert.strictEqual(error.status, "failed")
      assert.strictEqual(error.statuses.at(-1), "failed")
    }))

  it.scopedLive("cancels a migration held back by its bandwidth: the source says cancelled", () =>
    Effect.gen(function*() {
      const [source, destination] = yield* pair()
      const migration = yield* Migration.start(source, destination, { parameters: { "max-bandwidth": 1024 } })
      const cancelled = yield* migration.cancel
      assert.strictEqual(cancelled.statuses.at(-1), "cancelled")
      assert.include(cancelled.statuses, "cancelling")
      assert.isTrue((yield* source.execute("query-status")).running)
    }))

  it.scopedLive("refuses a transport it does not know with QmpArgumentError before either side is touched", () =>
    Effect.gen(function*() {
      const [source, destination] = yield* pair()
      const error = yield* Effect.flip(Migration.migrate(source, destination, { transport: "tcp" as never }))
      assert.strictEqual(error._tag, "QmpArgumentError")
      if (error._tag === "QmpArgumentError") {
        assert.strictEqual(error.path, "transport")
        assert.include(error.message, `expected "unix", "fd" or "file", got "tcp"`)
      }
      const info = yield* source.execute("query-migrate")
      assert.isUndefined((info as { status?: string }).status)
      const capabilities = yield* source.execute("query-migrate-capabilities")
      assert.isFalse(capabilities.find((c) => c.capability === "events")?.state)
    }))

  it.scopedLive("a migration that does not end within its timeout fails with MigrationTimeout and the last status", () =>
    Effect.gen(function*() {
      const [source, destination] = yield* pair()
      const error = yield* Effect.flip(
        Migration.migrate(source, destination, { parameters: { "max-bandwidth": 1024 }, timeout: "500 millis" })
      )
      assert.strictEqual(error._tag, "MigrationTimeout")
      if (error._tag !== "MigrationTimeout") return
      assert.strictEqual(error.side, "source")
      assert.strictEqual(error.statuses.at(-1), "active")
      assert.include(error.message, "(last: active)")
    }))
})
