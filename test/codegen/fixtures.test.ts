import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { generate } from "../../src/codegen/Generate.js"
import * as ExactJson from "../../src/internal/exactJson.js"
import { QemuVersion, SchemaInfoList } from "../../src/QmpIntrospection.js"

// The `query-qmp-schema` replies of released QEMUs (x86_64), as QEMU sends them.
const root = fileURLToPath(new URL("../..", import.meta.url))
const fixtures = Path.join(root, "test/fixtures/qmp-schemas")
const versions = ["5.2.0", "7.2.0", "8.2.0", "10.0.0"] as const
type Version = typeof versions[number]

interface Surface {
  readonly QmpSchemas: {
    readonly commands: Record<
      string,
      { readonly args: Schema.Schema<unknown>; readonly return: Schema.Schema<unknown> }
    >
    readonly events: Record<string, Schema.Schema<unknown>>
  }
}

const readSchema = (version: Version) =>
  Schema.decodeUnknownSync(SchemaInfoList)(
    JSON.parse(Fs.readFileSync(Path.join(fixtures, `qemu-${version}-x86_64.json`), "utf8"))
  )

const versionOf = (version: Version) => {
  const [major, minor, micro] = version.split(".").map(Number)
  return QemuVersion.make({ qemu: { major, minor, micro }, package: "fixture" })
}

// Shapes no released QEMU has sent yet, as a later one might: a meta-type and a JSON type this
// library does not know, an enum with `members` only (`values` is deprecated), an enum without
// values, unions nested three deep, and a member whose derived name would take a union's `Base`.
const future = Schema.decodeUnknownSync(SchemaInfoList)([
  { "meta-type": "builtin", name: "str", "json-type": "string" },
  { "meta-type": "builtin", name: "int", "json-type": "int" },
  { "meta-type": "builtin", name: "blob", "json-type": "binary" },
  { "meta-type": "tuple", name: "90", "element-types": ["str", "int"] },
  { "meta-type": "object", name: "0", members: [] },
  { "meta-type": "enum", name: "1", members: [{ name: "a" }, { name: "b", features: ["deprecated"] }] },
  { "meta-type": "enum", name: "2", values: [], members: [] },
  { "meta-type": "enum", name: "3", values: ["x", "y"] },
  {
    "meta-type": "object",
    name: "10",
    members: [{ name: "kind", type: "1" }, { name: "n", type: "int" }],
    tag: "kind",
    variants: [{ case: "a", type: "11" }, { case: "b", type: "0" }]
  },
  {
    "meta-type": "object",
    name: "11",
    members: [{ name: "sub", type: "3" }],
    tag: "sub",
    variants: [{ case: "x", type: "12" }, { case: "y", type: "13" }]
  },
  {
    "meta-type": "object",
    name: "12",
    members: [{ name: "deep", type: "1" }, { name: "p", type: "str" }],
    tag: "deep",
    variants: [{ case: "a", type: "13" }]
  },
  { "meta-type": "object", name: "13", members: [{ name: "q", type: "int", default: null }] },
  {
    "meta-type": "object",
    name: "20",
    members: [{ name: "base", type: "21" }, { name: "t", type: "90" }, {
      name: "b",
      type: "blob",
      default: null
    }, { name: "never", type: "2", default: null }]
  },
  { "meta-type": "object", name: "21", members: [{ name: "z", type: "str" }] },
  { "meta-type": "command", name: "x", "arg-type": "20", "ret-type": "10" },
  { "meta-type": "command", name: "x-base", "arg-type": "0", "ret-type": "13" },
  { "meta-type": "event", name: "FUTURE", "arg-type": "10", features: ["unstable"] }
])

// The generated modules live in a directory of their own that resolves `effect` like the project.
let dir = ""
beforeAll(() => {
  dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "surfaces-"))
  Fs.symlinkSync(Path.join(root, "node_modules"), Path.join(dir, "node_modules"))
  Fs.writeFileSync(Path.join(dir, "package.json"), JSON.stringify({ type: "module" }))
  Fs.writeFileSync(
    Path.join(dir, "tsconfig.json"),
    JSON.stringify({
      extends: Path.join(root, "tsconfig.json"),
      compilerOptions: { noEmit: true, types: [] },
      include: ["*.ts"]
    })
  )
  for (const version of versions) {
    const { source } = generate(readSchema(version), { version: versionOf(version) })
    Fs.writeFileSync(Path.join(dir, `qemu-${version}.ts`), source)
  }
  const { source } = generate(future, {
    version: QemuVersion.make({ qemu: { major: 99, minor: 0, micro: 0 }, package: "" })
  })
  Fs.writeFileSync(Path.join(dir, "future.ts"), source)
})
afterAll(() => Fs.rmSync(dir, { recursive: true, force: true }))

const load = (version: Version | "future"): Promise<Surface> =>
  import(
    /* @vite-ignore */ pathToFileURL(Path.join(dir, version === "future" ? "future.ts" : `qemu-${version}.ts`)).href
  )

// Replies are parsed as the client parses them: integers outside the safe range become bigints.
const decode = (schema: Schema.Schema<unknown>, json: string) =>
  Schema.decodeUnknownEither(schema, { onExcessProperty: "error" })(ExactJson.parse(json)).pipe(
    Either.mapLeft((error) => ParseResult.TreeFormatter.formatErrorSync(error))
  )

describe("surfaces generated from QEMU 5.2, 7.2, 8.2 and 10.0 schemas", () => {
  it.live(
    "type-check under the project's strict compiler settings",
    () =>
      Effect.promise(() =>
        new Promise<{ code: number | null; output: string }>((resolve) => {
          const tsc = Path.join(root, "node_modules/typescript/bin/tsc")
          execFile(
            process.execPath,
            [tsc, "-p", dir],
            { maxBuffer: 16 * 1024 * 1024 },
            (error, stdout, stderr) =>
              resolve({ code: error === null ? 0 : (error.code as number | null), output: stdout + stderr })
          )
        })
      ).pipe(Effect.map(({ code, output }) => {
        assert.strictEqual(output, "")
        assert.strictEqual(code, 0)
      })),
    240_000
  )

  for (const version of versions) {
    it.live(`QEMU ${version}: imports and decodes replies and events, 64-bit values exactly`, () =>
      Effect.promise(() => load(version)).pipe(Effect.map(({ QmpSchemas }) => {
        const status = QmpSchemas.commands["query-status"].return
        assert.strictEqual(
          decode(status, `{"running": true, "status": "running"}`)._tag,
          version === "10.0.0" ? "Right" : "Left"
        )
        assert.strictEqual(decode(status, `{"running": true, "status": "levitating"}`)._tag, "Left")
        const completed = QmpSchemas.events.BLOCK_JOB_COMPLETED
        const big = decode(
          completed,
          `{"type": "mirror", "device": "job0", "len": 18446744073709551104, "offset": 9007199254740993, "speed": 0}`
        )
        assert.deepStrictEqual(
          big,
          Either.right({
            type: "mirror",
            device: "job0",
            len: 18446744073709551104n,
            offset: 9007199254740993n,
            speed: 0
          })
        )
        assert.strictEqual(
          decode(completed, `{"type": "mirror", "device": "job0", "len": "1", "offset": 0, "speed": 0}`)._tag,
          "Left"
        )
        const deviceAdd = QmpSchemas.commands.device_add.args
        assert.strictEqual(
          decode(deviceAdd, `{"driver": "virtio-net-pci", "id": "n", "socket-id": 0, "mq": true}`)._tag,
          "Right"
        )
        assert.strictEqual(decode(deviceAdd, `{"id": "n", "socket-id": 0}`)._tag, "Left")
        assert.strictEqual(decode(QmpSchemas.events.STOP, "null")._tag, "Left")
        assert.strictEqual(Schema.decodeUnknownEither(QmpSchemas.events.STOP)(undefined)._tag, "Right")
      })))
  }

  it.effect("names every command's and event's types after it, the same in every version where QEMU kept them", () =>
    Effect.sync(() => {
      // What `Commands` and `Events` say for each name: the type a user's code refers to.
      const surface = (version: Version) => {
        const source = Fs.readFileSync(Path.join(dir, `qemu-${version}.ts`), "utf8")
        const names = new Map<string, string>()
        for (
          const [, name, args, ret] of source.matchAll(
            /^ {2}readonly (\S+): \{ readonly args: (.*); readonly return: (.*) \}$/gm
          )
        ) {
          names.set(`${name} args`, args)
          names.set(`${name} return`, ret)
        }
        const events = source.slice(
          source.indexOf("export interface Events {"),
          source.indexOf("export interface QmpSchemas")
        )
        for (const [, name, data] of events.matchAll(/^ {2}readonly (\S+): (.*)$/gm)) names.set(`${name} data`, data)
        return names
      }
      const changed: Array<string> = []
      for (let i = 0; i + 1 < versions.length; i++) {
        const [older, newer] = [surface(versions[i]), surface(versions[i + 1])]
        assert.isAbove(older.size, 400)
        for (const [use, type] of older) {
          const now = newer.get(use)
          if (now !== undefined && now !== type) changed.push(`${versions[i + 1]} ${use}: ${type} -> ${now}`)
        }
      }
      // Only where QEMU itself changed the command: object-add's arguments became a union in 6.0,
      // query-dirty-rate and query-machines took their first arguments in 8.1 and 9.1.
      assert.deepStrictEqual(changed, [
        `7.2.0 "object-add" args: ObjectAddArgs & { readonly [property: string]: unknown } -> ObjectAddArgs`,
        `8.2.0 "query-dirty-rate" args: undefined -> QueryDirtyRateArgs`,
        `10.0.0 "query-machines" args: undefined -> QueryMachinesArgs`
      ])
      assert.strictEqual(surface("10.0.0").get(`"migrate-recover" args`), "MigrateRecoverArgs")
    }))

  it.live("a later QEMU's unknown shapes still generate, type-check (above), import and decode", () =>
    Effect.promise(() => load("future")).pipe(Effect.map(({ QmpSchemas }) => {
      const ret = QmpSchemas.commands.x.return
      assert.strictEqual(decode(ret, `{"kind": "a", "n": 1, "sub": "x", "deep": "a", "p": "p", "q": 5}`)._tag, "Right")
      assert.strictEqual(decode(ret, `{"kind": "a", "n": 1, "sub": "x", "deep": "a", "p": "p", "q": "5"}`)._tag, "Left")
      assert.strictEqual(decode(ret, `{"kind": "a", "n": 1, "sub": "x", "deep": "b", "p": "p", "q": 5}`)._tag, "Left")
      assert.strictEqual(decode(ret, `{"kind": "a", "n": 1, "sub": "y"}`)._tag, "Right")
      assert.strictEqual(decode(ret, `{"kind": "b", "n": 1}`)._tag, "Right")
      assert.strictEqual(decode(ret, `{"kind": "b", "n": 1, "sub": "y"}`)._tag, "Left")
      const args = QmpSchemas.commands.x.args
      assert.strictEqual(
        decode(args, `{"base": {"z": "z"}, "t": ["anything", 1], "b": {"any": "value"}}`)._tag,
        "Right"
      )
      assert.strictEqual(decode(args, `{"base": {"z": "z"}, "t": 1, "never": "a"}`)._tag, "Left")
    })))

  for (const version of ["8.2.0", "10.0.0"] as const) {
    it.live(`QEMU ${version}: a union variant that is itself a union (migrate's channel address) decodes`, () =>
      Effect.promise(() => load(version)).pipe(Effect.map(({ QmpSchemas }) => {
        const migrate = QmpSchemas.commands.migrate.args
        const channel = (addr: string) => `{"uri": "unused:", "channels": [{"channel-type": "main", "addr": ${addr}}]}`
        assert.deepStrictEqual(
          decode(migrate, channel(`{"transport": "socket", "type": "unix", "path": "/run/m.sock"}`)),
          Either.right({
            uri: "unused:",
            channels: [{ "channel-type": "main", addr: { transport: "socket", type: "unix", path: "/run/m.sock" } }]
          })
        )
        assert.strictEqual(
          decode(migrate, channel(`{"transport": "socket", "type": "inet", "host": "h", "port": "1"}`))._tag,
          "Right"
        )
        assert.strictEqual(decode(migrate, channel(`{"transport": "exec", "args": ["cat"]}`))._tag, "Right")
        // The inner union's tag selects its members: a unix socket needs a path, an inet one no path.
        assert.strictEqual(decode(migrate, channel(`{"transport": "socket", "type": "unix"}`))._tag, "Left")
        assert.strictEqual(
          decode(migrate, channel(`{"transport": "socket", "type": "inet", "path": "/x"}`))._tag,
          "Left"
        )
        assert.strictEqual(decode(migrate, channel(`{"transport": "socket", "type": "carrier-pigeon"}`))._tag, "Left")
      })))
  }
})
