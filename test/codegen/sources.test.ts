import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import ts from "typescript"
import { generate } from "../../src/codegen/Generate.js"
import { parseAddress, parseVersion, probe, probeAddress, readSchemaFile } from "../../src/codegen/Probe.js"
import { SchemaInfoList } from "../../src/QmpIntrospection.js"
import { rawQemu, tempDir } from "../kit/qemu.js"

const root = fileURLToPath(new URL("../..", import.meta.url))
const fixture = Path.join(root, "test/fixtures/qmp-schemas/qemu-10.0.0-x86_64.json")
const tsx = Path.join(root, "node_modules/tsx/dist/cli.mjs")

// Each run starts Node, tsx and the whole command line: many seconds on a loaded machine.
const cliTimeout = 240_000

// Runs `effect-qemu` from source, as `npx effect-qemu` would run the built one.
const cli = (args: ReadonlyArray<string>) =>
  Effect.async<{ readonly code: number; readonly stdout: string; readonly stderr: string }>((resume) => {
    execFile(
      process.execPath,
      [tsx, Path.join(root, "src/bin.ts"), ...args],
      (error, stdout, stderr) =>
        resume(Effect.succeed({ code: error === null ? 0 : Number(error.code ?? 1), stdout, stderr }))
    )
  })

// A QEMU started by hand, listening for QMP on its own: what libvirt or a user's script leaves
// running. Killed and awaited when the scope closes.
const handStartedQemu = (monitor: string) => rawQemu(["-qmp", `${monitor},server=on,wait=off`])

// QEMU creates its socket a moment after it starts.
const listening = (path: string) =>
  Effect.suspend(() => Fs.existsSync(path) ? Effect.void : Effect.fail("not yet")).pipe(
    Effect.retry({ times: 250, schedule: Schedule.spaced("20 millis") }),
    Effect.orDie
  )

const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const port = (server.address() as Net.AddressInfo).port
    server.close(() => resume(Effect.succeed(port)))
  })
})

describe("codegen from a schema file", () => {
  it.scopedLive("writes the surface of a saved query-qmp-schema reply with `--schema`", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("codegen-")
      const out = Path.join(dir, "surface", "qemu-10.ts")
      const run = yield* cli(["codegen", "--schema", fixture, "--qemu-version", "10.0.0", "--out", out])
      assert.strictEqual(run.stderr, "")
      assert.strictEqual(run.code, 0)
      assert.include(run.stdout, "QEMU 10.0.0, 233/233 commands")
      const schema = Schema.decodeUnknownSync(SchemaInfoList)(JSON.parse(Fs.readFileSync(fixture, "utf8")))
      const version = Either.getOrThrow(parseVersion("10.0.0"))
      assert.strictEqual(Fs.readFileSync(out, "utf8"), generate(schema, { version }).source)
    }), cliTimeout)

  it.scopedLive(
    "writes .js + .d.ts for an --out ending in .js: importable, declarations that type-check, registered",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("codegen-")
        Fs.symlinkSync(Path.join(root, "node_modules"), Path.join(dir, "node_modules"))
        Fs.writeFileSync(Path.join(dir, "package.json"), JSON.stringify({ type: "module" }))
        const out = Path.join(dir, "qemu-10.js")
        const run = yield* cli([
          "codegen",
          "--schema",
          fixture,
          "--qemu-version",
          "10.0.0",
          "--out",
          out,
          "--register",
          "effect-qemu/QmpCommands"
        ])
        assert.strictEqual(run.stderr, "")
        const dts = Fs.readFileSync(Path.join(dir, "qemu-10.d.ts"), "utf8")
        assert.include(dts, `declare module "effect-qemu/QmpCommands" {`)
        assert.include(dts, "export declare const QmpSchemas: QmpSchemas;")
        assert.notInclude(dts, "Schema.Struct(")
        const surface = yield* Effect.promise(() => import(/* @vite-ignore */ pathToFileURL(out).href))
        const decoded = Schema.decodeUnknownEither(surface.QmpSchemas.commands["query-status"].return)({
          running: true,
          status: "running"
        })
        assert.strictEqual(decoded._tag, "Right")
        // The declarations alone, checked as a user's tsc would, without skipping library files.
        const program = ts.createProgram([Path.join(dir, "qemu-10.d.ts")], {
          strict: true,
          exactOptionalPropertyTypes: true,
          noEmit: true,
          module: ts.ModuleKind.NodeNext,
          moduleResolution: ts.ModuleResolutionKind.NodeNext,
          target: ts.ScriptTarget.ES2022,
          types: []
        })
        const problems = ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName.includes("qemu-10"))
        assert.deepStrictEqual(problems.map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n")), [])
      }),
    cliTimeout
  )

  it.effect("reads the bare list and the whole reply, and says what is wrong with anything else", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("codegen-")
      const list = JSON.parse(Fs.readFileSync(fixture, "utf8"))
      const reply = Path.join(dir, "reply.json")
      Fs.writeFileSync(reply, JSON.stringify({ return: list, id: 1 }))
      const fromReply = yield* readSchemaFile({ file: reply })
      const fromList = yield* readSchemaFile({ file: fixture })
      assert.strictEqual(fromReply.schema.length, list.length)
      assert.deepStrictEqual(fromReply.schema, fromList.schema)
      assert.isUndefined(fromList.version)

      const missing = yield* Effect.flip(readSchemaFile({ file: Path.join(dir, "nope.json") }))
      assert.match(missing.message, /^could not read the QMP schema of .*nope\.json: .*ENOENT/)
      Fs.writeFileSync(Path.join(dir, "bad.json"), "{ not json")
      const bad = yield* Effect.flip(readSchemaFile({ file: Path.join(dir, "bad.json") }))
      assert.match(bad.detail, /^not JSON/)
      Fs.writeFileSync(Path.join(dir, "other.json"), JSON.stringify({ return: { status: "running" } }))
      const other = yield* Effect.flip(readSchemaFile({ file: Path.join(dir, "other.json") }))
      assert.match(other.detail, /^not a query-qmp-schema reply/)
    }).pipe(Effect.scoped))

  it.effect("refuses a command line that names no source or a bad version", () =>
    Effect.gen(function*() {
      const none = yield* cli(["codegen", "--out", "/nonexistent/x.ts"])
      assert.notStrictEqual(none.code, 0)
      assert.include(none.stderr, "give exactly one of --binary, --address and --schema")
      const version = yield* cli(["codegen", "--schema", fixture, "--qemu-version", "ten", "--out", "/nonexistent/x"])
      assert.include(version.stderr, `--qemu-version: "ten" is not a version such as 10.0.0`)
    }), cliTimeout)
})

describe("codegen from a running QEMU's address", () => {
  it.effect("reads unix: and tcp: addresses, and says what is wrong with others", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(
        parseAddress("unix:/run/vm/qmp.sock"),
        Either.right({ _tag: "Unix", path: "/run/vm/qmp.sock" })
      )
      assert.deepStrictEqual(
        parseAddress("tcp:localhost:4444"),
        Either.right({ _tag: "Tcp", host: "localhost", port: 4444 })
      )
      assert.deepStrictEqual(parseAddress("tcp:[::1]:4444"), Either.right({ _tag: "Tcp", host: "::1", port: 4444 }))
      assert.deepStrictEqual(parseAddress("tcp:localhost:70000"), Either.left("port 70000 is not between 1 and 65535"))
      assert.deepStrictEqual(
        parseAddress("/run/vm/qmp.sock"),
        Either.left(`"/run/vm/qmp.sock" is not unix:PATH or tcp:HOST:PORT`)
      )
    }))

  it.scopedLive(
    "writes the same surface from a hand-started QEMU's UNIX monitor as from its binary, and leaves it running",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("codegen-")
        const socket = Path.join(dir, "qmp.sock")
        const qemu = yield* handStartedQemu(`unix:${socket}`)
        yield* listening(socket)
        const out = Path.join(dir, "surface.ts")
        const run = yield* cli(["codegen", "--address", `unix:${socket}`, "--out", out])
        assert.strictEqual(run.stderr, "")
        assert.strictEqual(run.code, 0)
        const fromBinary = yield* probe({ binary: "qemu-system-x86_64" })
        assert.strictEqual(
          Fs.readFileSync(out, "utf8"),
          generate(fromBinary.schema, { version: fromBinary.version }).source
        )
        assert.isNull(qemu.child.exitCode)
        // And again, as the library call: the monitor is free again once the first client left.
        const probed = yield* probeAddress({ address: `unix:${socket}` })
        assert.strictEqual(probed.version.number, fromBinary.version.number)
        assert.isNull(qemu.child.exitCode)
      }),
    cliTimeout
  )

  it.scopedLive("reads the schema over a TCP monitor", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      yield* handStartedQemu(`tcp:127.0.0.1:${port}`)
      const probed = yield* probeAddress({ address: `tcp:127.0.0.1:${port}`, timeout: "10 seconds" }).pipe(
        Effect.retry({
          times: 250,
          schedule: Schedule.spaced("20 millis"),
          while: (error) => /ECONNREFUSED/.test(error.detail)
        })
      )
      assert.strictEqual(probed.schema.some((info) => info.name === "query-qmp-schema"), true)
    }))

  it.scopedLive("fails with the address in the error when nothing listens there", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("codegen-")
      const error = yield* Effect.flip(probeAddress({ address: `unix:${Path.join(dir, "absent.sock")}` }))
      assert.strictEqual(error._tag, "ProbeError")
      assert.include(error.message, `could not read the QMP schema of unix:${Path.join(dir, "absent.sock")}`)
      const bad = yield* Effect.flip(probeAddress({ address: "qmp.sock" }))
      assert.strictEqual(bad.detail, `"qmp.sock" is not unix:PATH or tcp:HOST:PORT`)
    }))
})
