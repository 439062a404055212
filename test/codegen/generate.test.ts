import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
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
      expect(source).toContain("export interface GetThingArgs {")
      // x-other's arguments have the shape of get-thing's: one declaration, and x-other's own name for it.
      expect(source).not.toContain("export interface XOtherArgs")
      expect(source).toContain("export type XOtherArgs = GetThingArgs")
      expect(source).toContain(`readonly "x-other": { readonly args: XOtherArgs; readonly return: Empty }`)
      expect(source).toContain(`export type GetThingReturnKind = "a" | "b"`)
      expect(source).toContain("readonly kind?: GetThingReturnKind | undefined")
      expect(source).toContain("readonly THING_GONE: undefined")
      expect(source).toContain(`declare module "effect-qemu/QmpCommands" {`)
      expect(coverage).toMatchObject({ commands: 2, events: 1, typedCommands: 2, typedEvents: 1, types: 5, shapes: 4 })
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
      expect(member("old")).toContain("@deprecated")
      expect(member(`"x-new"`)).toContain("@experimental")
      expect(member("plain")).not.toMatch(/@deprecated|@experimental/)
      expect(member(`"do-it": {`)).toContain("@deprecated")
      expect(member("X_HAPPENED: undefined")).toContain("@experimental")
    }))

  it.effect("writes QAPI names in PascalCase", () =>
    Effect.sync(() => {
      expect(pascalCase("query-status")).toBe("QueryStatus")
      expect(pascalCase("BLOCK_JOB_COMPLETED")).toBe("BlockJobCompleted")
      expect(pascalCase("__com.redhat_drive_add")).toBe("ComRedhatDriveAdd")
      expect(pascalCase("node-name")).toBe("NodeName")
    }))

  it.effect("decodes a flat union by its tag, and a recursive shape through Schema.suspend", () =>
    Effect.sync(() => {
      const decode = Schema.decodeUnknownEither(QmpSchemas.commands["blockdev-add"].args, { onExcessProperty: "error" })
      expect(decode({ driver: "file", "node-name": "disk0", filename: "/tmp/disk.img" })._tag).toBe("Right")
      expect(decode({ driver: "file", "node-name": "disk0" })._tag).toBe("Left")
      expect(decode({ driver: "null-co", "node-name": "n", filename: "/tmp/disk.img" })._tag).toBe("Left")
      // qcow2's `backing` is itself a BlockdevRef: options of another node, or a node name.
      const nested = {
        driver: "qcow2",
        "node-name": "top",
        file: "top-file",
        backing: { driver: "qcow2", file: { driver: "file", filename: "/tmp/base.qcow2" } }
      }
      expect(decode(nested)._tag).toBe("Right")
    }))
})
