import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { generate } from "../../src/codegen/Generate.js"
import { pascalCase } from "../../src/codegen/Shapes.js"
import { QmpSchemas } from "../../src/generated/qemu.js"
import { QemuVersion, SchemaInfoList } from "../../src/QmpIntrospection.js"

const version = QemuVersion.make({ qemu: { major: 1, minor: 2, micro: 3 }, package: "test" })

describe("the generator, on a hand-written schema", () => {
  it.effect("names shapes after their first use, merges identical ones, and names every command's own", () =>
    Effect.sync(() => {
      const schema = Schema.decodeUnknownSync(SchemaInfoList)([
        { "meta-type": "builtin", name: "str", "json-type": "string" },
        { "meta-type": "object", name: "0", members: [] },
        { "meta-type": "object", name: "1", members: [{ name: "id", type: "str" }] },
        { "meta-type": "object", name: "2", members: [{ name: "id", type: "str" }] },
        { "meta-type": "enum", name: "3", values: ["a", "b"] },
        { "meta-type": "object", name: "4", members: [{ name: "kind", type: "3", default: null }] },
        { "meta-type": "command", name: "get-thing", "arg-type": "1", "ret-type": "4" },
        { "meta-type": "command", name: "x-other", "arg-type": "2", "ret-type": "0", features: ["unstable"] },
        { "meta-type": "event", name: "THING_GONE", "arg-type": "0" }
      ])
      const { coverage, source } = generate(schema, {
        version,
        register: "effect-qemu/QmpCommands"
      })
      assert.include(source, "export interface GetThingArgs {")
      // x-other's arguments have the shape of get-thing's: one declaration, and x-other's own name for it.
      assert.notInclude(source, "export interface XOtherArgs")
      assert.include(source, "export type XOtherArgs = GetThingArgs")
      assert.include(source, `readonly "x-other": { readonly args: XOtherArgs; readonly return: Empty }`)
      assert.include(source, `export type GetThingReturnKind = "a" | "b"`)
      assert.include(source, "readonly kind?: GetThingReturnKind | undefined")
      assert.include(source, "readonly THING_GONE: undefined")
      assert.include(source, `declare module "effect-qemu/QmpCommands" {`)
      assert.deepStrictEqual(coverage, {
        commands: 2,
        events: 1,
        typedCommands: 2,
        typedEvents: 1,
        types: 5,
        shapes: 4
      })
    }))

  it.effect("marks deprecated and unstable commands, events and members with doc tags editors show", () =>
    Effect.sync(() => {
      const schema = Schema.decodeUnknownSync(SchemaInfoList)([
        { "meta-type": "builtin", name: "str", "json-type": "string" },
        { "meta-type": "object", name: "0", members: [] },
        {
          "meta-type": "object",
          name: "1",
          members: [
            { name: "old", type: "str", default: null, features: ["deprecated"] },
            { name: "x-new", type: "str", default: null, features: ["unstable"] },
            { name: "plain", type: "str" }
          ]
        },
        { "meta-type": "command", name: "do-it", "arg-type": "1", "ret-type": "0", features: ["deprecated"] },
        { "meta-type": "event", name: "X_HAPPENED", "arg-type": "0", features: ["unstable"] }
      ])
      const { source } = generate(schema, { version })
      // The doc comment right above a declaration, if any.
      const lines = source.split("\n")
      const member = (name: string) => {
        let i = lines.findIndex((line) => line.includes(`readonly ${name}`)) - 1
        const doc: Array<string> = []
        while (i >= 0 && /^\s*(\/\*\*|\*)/.test(lines[i])) doc.unshift(lines[i--])
        return doc.join("\n")
      }
      assert.include(member("old"), "@deprecated")
      assert.include(member(`"x-new"`), "@experimental")
      assert.notMatch(member("plain"), /@deprecated|@experimental/)
      assert.include(member(`"do-it": {`), "@deprecated")
      assert.include(member("X_HAPPENED: undefined"), "@experimental")
    }))

  it.effect("writes QAPI names in PascalCase", () =>
    Effect.sync(() => {
      assert.strictEqual(pascalCase("query-status"), "QueryStatus")
      assert.strictEqual(pascalCase("BLOCK_JOB_COMPLETED"), "BlockJobCompleted")
      assert.strictEqual(pascalCase("__com.redhat_drive_add"), "ComRedhatDriveAdd")
      assert.strictEqual(pascalCase("node-name"), "NodeName")
    }))

  it.effect("decodes a flat union by its tag, and a recursive shape through Schema.suspend", () =>
    Effect.sync(() => {
      const decode = Schema.decodeUnknownEither(QmpSchemas.commands["blockdev-add"].args, { onExcessProperty: "error" })
      assert.strictEqual(decode({ driver: "file", "node-name": "disk0", filename: "/tmp/disk.img" })._tag, "Right")
      assert.strictEqual(decode({ driver: "file", "node-name": "disk0" })._tag, "Left")
      assert.strictEqual(decode({ driver: "null-co", "node-name": "n", filename: "/tmp/disk.img" })._tag, "Left")
      // qcow2's `backing` is itself a BlockdevRef: options of another node, or a node name.
      const nested = {
        driver: "qcow2",
        "node-name": "top",
        file: "top-file",
        backing: { driver: "qcow2", file: { driver: "file", filename: "/tmp/base.qcow2" } }
      }
      assert.strictEqual(decode(nested)._tag, "Right")
    }))
})
