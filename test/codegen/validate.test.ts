import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Machine from "../../src/Machine.js"
import { SchemaInfoList } from "../../src/QmpIntrospection.js"
import { validateArgs } from "../../src/QmpValidate.js"
import { noneArgs } from "../kit/qemu.js"

const reasonOf = (result: Either.Either<void, { readonly reason: string; readonly path: string }>) =>
  Either.isLeft(result) ? `${result.left.reason} ${result.left.path}` : "ok"

describe("validateArgs against QEMU 7.2's live schema", () => {
  it.scopedLive("names the member that is unknown, missing, mistyped or not in its enum", () =>
    Effect.gen(function*() {
      const qmp = yield* Machine.make({ args: noneArgs })
      const schema = yield* qmp.execute("query-qmp-schema").pipe(Effect.flatMap(Schema.decodeUnknown(SchemaInfoList)))

      assert.strictEqual(reasonOf(validateArgs(schema, "query-status", undefined)), "ok")
      assert.strictEqual(reasonOf(validateArgs(schema, "blockdev-del", { "node-name": "disk0" })), "ok")
      assert.strictEqual(
        reasonOf(validateArgs(schema, "blockdev-del", { nodename: "disk0" })),
        "MissingMember node-name"
      )
      assert.strictEqual(
        reasonOf(validateArgs(schema, "blockdev-del", { "node-name": "d", extra: 1 })),
        "UnknownMember extra"
      )
      assert.strictEqual(reasonOf(validateArgs(schema, "blockdev-del", { "node-name": 1 })), "WrongType node-name")
      assert.strictEqual(reasonOf(validateArgs(schema, "set-action", { shutdown: "explode" })), "BadEnumValue shutdown")
      assert.strictEqual(reasonOf(validateArgs(schema, "x-no-such-command", {})), "UnknownCommand ")
      // Flat unions: the tag selects which members are allowed and required.
      assert.strictEqual(
        reasonOf(validateArgs(schema, "blockdev-add", { driver: "file", "node-name": "d", filename: "/x" })),
        "ok"
      )
      assert.strictEqual(
        reasonOf(validateArgs(schema, "blockdev-add", { driver: "file", "node-name": "d" })),
        "MissingMember filename"
      )
      assert.strictEqual(
        reasonOf(validateArgs(schema, "blockdev-add", { driver: "null-co", "node-name": "d", filename: "/x" })),
        "UnknownMember filename"
      )
      assert.strictEqual(
        reasonOf(validateArgs(schema, "blockdev-add", {
          driver: "qcow2",
          "node-name": "top",
          file: { driver: "file", filename: 7 }
        })),
        "WrongType file.filename"
      )
    }))

  it.scopedLive("agrees with QEMU: what it accepts runs, what it rejects QEMU rejects too", () =>
    Effect.gen(function*() {
      const qmp = yield* Machine.make({ args: noneArgs })
      const schema = yield* qmp.execute("query-qmp-schema").pipe(Effect.flatMap(Schema.decodeUnknown(SchemaInfoList)))
      const good = { path: "/machine", property: "type" }
      const bad = { path: "/machine", propertee: "type" }
      assert.strictEqual(reasonOf(validateArgs(schema, "qom-get", good)), "ok")
      assert.strictEqual((yield* qmp.execute("qom-get", good).pipe(Effect.either))._tag, "Right")
      assert.strictEqual(reasonOf(validateArgs(schema, "qom-get", bad)), "MissingMember property")
      const refused = yield* qmp.execute("qom-get", bad as never).pipe(Effect.flip)
      assert.strictEqual(refused._tag === "QmpCommandError" && refused.errorClass, "GenericError")
    }))
})

describe("validateArgs against QEMU 10.0's schema (fixture)", () => {
  const schema = Schema.decodeUnknownSync(SchemaInfoList)(
    JSON.parse(Fs.readFileSync(new URL("../fixtures/qmp-schemas/qemu-10.0.0-x86_64.json", import.meta.url), "utf8"))
  )
  const migrateTo = (addr: Record<string, unknown>) => ({ channels: [{ "channel-type": "main", addr }] })

  it("follows a variant that is itself a union down to the members its inner tag selects", () => {
    assert.strictEqual(
      reasonOf(validateArgs(schema, "migrate", migrateTo({ transport: "socket", type: "unix", path: "/m" }))),
      "ok"
    )
    assert.strictEqual(
      reasonOf(validateArgs(schema, "migrate", migrateTo({ transport: "socket", type: "unix" }))),
      "MissingMember channels[0].addr.path"
    )
    assert.strictEqual(
      reasonOf(validateArgs(schema, "migrate", migrateTo({ transport: "socket", type: "fd", path: "/m" }))),
      "MissingMember channels[0].addr.str"
    )
  })

  it("lets device_add take properties its schema does not list, but still wants its driver", () => {
    assert.strictEqual(
      reasonOf(validateArgs(schema, "device_add", { driver: "virtio-net-pci", id: "n", "socket-id": 0 })),
      "ok"
    )
    assert.strictEqual(
      reasonOf(validateArgs(schema, "device_add", { id: "n", mac: "52:54:00:12:34:56" })),
      "MissingMember driver"
    )
    assert.strictEqual(
      reasonOf(validateArgs(schema, "object-add", { "qom-type": "iothread", id: "io", bogus: 1 })),
      "UnknownMember bogus"
    )
  })

  it("takes a bigint where QAPI has an integer, and refuses one where it has a string", () => {
    assert.strictEqual(
      reasonOf(validateArgs(schema, "block_resize", { "node-name": "d", size: 18446744073709551104n })),
      "ok"
    )
    assert.strictEqual(
      reasonOf(validateArgs(schema, "block_resize", { "node-name": 1n, size: 1 })),
      "WrongType node-name"
    )
  })
})
