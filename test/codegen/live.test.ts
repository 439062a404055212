import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import { toJsAndDeclarations } from "../../src/codegen/Emit.js"
import { generate } from "../../src/codegen/Generate.js"
import { probe } from "../../src/codegen/Probe.js"
import { QmpSchemas } from "../../src/generated/qemu.js"
import * as Machine from "../../src/Machine.js"
import { makeIndex, SchemaInfoList } from "../../src/QmpIntrospection.js"
import { noneArgs } from "../kit/qemu.js"

const binary = "qemu-system-x86_64"
// The bundled surface is committed as .js + .d.ts (see codegen/Emit).
const committedJs = new URL("../../src/generated/qemu.js", import.meta.url)
const committedDts = new URL("../../src/generated/qemu.d.ts", import.meta.url)

// Replies are decoded strictly: a member QEMU sends that the generated schema lacks is a failure.
const decodeStrict = <A>(schema: Schema.Schema<A>, value: unknown) =>
  Schema.decodeUnknownEither(schema, { onExcessProperty: "error" })(value).pipe(
    Either.mapLeft((error) => ParseResult.TreeFormatter.formatErrorSync(error))
  )

const launch = () => Machine.make({ args: noneArgs })

describe("the generated surface against a running QEMU 7.2", () => {
  it.scopedLive("decodes the reply of every argument-less query- command, naming those QEMU refuses", () =>
    Effect.gen(function*() {
      const qmp = yield* launch()
      const schema = yield* qmp.execute("query-qmp-schema").pipe(Effect.flatMap(Schema.decodeUnknown(SchemaInfoList)))
      const index = makeIndex(schema)
      const takesNothing = (argType: string) => {
        const info = index.types.get(argType)
        return info?.["meta-type"] === "object" && info.members.length === 0 && info.variants === undefined
      }
      const queries = [...index.commands.values()]
        .filter((command) => command.name.startsWith("query-") && takesNothing(command["arg-type"]))
        .map((command) => command.name)
        .sort()

      const decoded: Array<string> = []
      const refused: Array<string> = []
      const undecodable: Array<string> = []
      for (const name of queries) {
        const reply = yield* qmp.execute(name).pipe(Effect.either)
        if (Either.isLeft(reply)) {
          // Some queries need a machine, a device or an accelerator that `-M none` does not have.
          assert.strictEqual(reply.left._tag, "QmpCommandError")
          if (reply.left._tag === "QmpCommandError") {
            refused.push(`${name} (${reply.left.errorClass}: ${reply.left.desc})`)
          }
          continue
        }
        const commandSchemas = QmpSchemas.commands[name as keyof typeof QmpSchemas.commands]
        assert.isDefined(commandSchemas, `${name} is in the generated surface`)
        const result = decodeStrict(commandSchemas.return as Schema.Schema<unknown>, reply.right)
        if (Either.isLeft(result)) undecodable.push(`${name}: ${result.left}`)
        else decoded.push(name)
      }
      console.info(
        `${queries.length} argument-less query- commands: ${decoded.length} decoded, ${refused.length} refused by QEMU:\n  ` +
          refused.join("\n  ")
      )
      assert.deepStrictEqual(undecodable, [])
      assert.isAbove(decoded.length, 30)
      assert.include(decoded, "query-status")
      assert.include(decoded, "query-qmp-schema")
    }))

  it.scopedLive("decodes the data of STOP, RESUME and SHUTDOWN as QEMU sends them", () =>
    Effect.gen(function*() {
      const qmp = yield* launch()
      yield* qmp.execute("stop")
      const stop = yield* qmp.waitEvent("STOP", { timeout: "10 seconds" })
      assert.deepStrictEqual(decodeStrict(QmpSchemas.events.STOP, stop.data), Either.right(undefined))
      yield* qmp.execute("cont")
      const resume = yield* qmp.waitEvent("RESUME", { timeout: "10 seconds" })
      assert.deepStrictEqual(decodeStrict(QmpSchemas.events.RESUME, resume.data), Either.right(undefined))
      yield* qmp.execute("quit")
      const shutdown = yield* qmp.waitEvent("SHUTDOWN", { timeout: "10 seconds" })
      assert.deepStrictEqual(
        decodeStrict(QmpSchemas.events.SHUTDOWN, shutdown.data),
        Either.right({ guest: false, reason: "host-qmp-quit" as const })
      )
      yield* qmp.wait({ timeout: "10 seconds" })
    }))
})

describe("free-form arguments against a running QEMU 7.2", () => {
  it.scopedLive("device_add takes the device's own properties, typed without a cast, and QEMU applies them", () =>
    Effect.gen(function*() {
      const vm = yield* Machine.make({ args: ["-M", "pc", "-nodefaults", "-S"] })
      const mac = "52:54:00:12:34:56"
      yield* vm.execute("device_add", { driver: "virtio-net-pci", id: "nic1", mac, mq: true })
      assert.strictEqual(yield* vm.execute("qom-get", { path: "/machine/peripheral/nic1", property: "mac" }), mac)
      assert.strictEqual(yield* vm.execute("qom-get", { path: "/machine/peripheral/nic1", property: "mq" }), true)
    }))
})

describe("effect-qemu codegen", () => {
  it.live("gives identical output on two runs, and the committed surface is what it generates now", () =>
    Effect.gen(function*() {
      const first = yield* probe({ binary })
      const second = yield* probe({ binary })
      const a = generate(first.schema, { version: first.version }).source
      const b = generate(second.schema, { version: second.version }).source
      assert.strictEqual(b, a)

      const committed = Fs.readFileSync(committedDts, "utf8")
      // Stable distributions bump QEMU's micro version and package string without touching the
      // schema; the comparison is of the surface, under the committed file's version stamp.
      const stamp = /^ \* The QMP surface of QEMU (\S+) \((.*)\): /m.exec(committed)
      assert.isNotNull(stamp, "the committed file names the QEMU it came from")
      const [, committedNumber, committedPackage] = stamp!
      const restamped = committedNumber === first.version.number && committedPackage === first.version.package
        ? a
        : a.replaceAll(`QEMU ${first.version.number}`, `QEMU ${committedNumber}`)
          .replace(`(${first.version.package})`, `(${committedPackage})`)
      const emitted = yield* toJsAndDeclarations(restamped)
      assert.strictEqual(emitted.dts, committed, "src/generated/qemu.d.ts is stale: run `npm run codegen`")
      assert.strictEqual(
        emitted.js,
        Fs.readFileSync(committedJs, "utf8"),
        "src/generated/qemu.js is stale: run `npm run codegen`"
      )
    }))
})
