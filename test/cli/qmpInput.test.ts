import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { catalogFromCommands, catalogFromSchema, completer, parseLine, pretty } from "../../src/cli/qmpInput.js"
import { root } from "../kit/cli.js"

// What a line reads as, as plain data: `{ right: input }` or `{ left: reason }`.
const read = (line: string) =>
  Either.match(parseLine(line), { onLeft: (left) => ({ left }), onRight: (right) => ({ right }) })

const request = (command: string, args?: Record<string, unknown>) => ({
  right: { _tag: "Request" as const, request: { command, arguments: args } }
})

const reason = (line: string) => Either.getOrThrow(Either.flip(parseLine(line)))

describe("the qmp shell's input", () => {
  it.effect("reads `command name=value ...` with JSON values, plain text and nested names", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(read("query-status"), request("query-status"))
      assert.deepStrictEqual(
        read("  blockdev-add driver=null-co node-name=n0 size=1048576 read-only=true"),
        request("blockdev-add", { driver: "null-co", "node-name": "n0", size: 1048576, "read-only": true })
      )
      assert.deepStrictEqual(
        read(`human-monitor-command command-line='info block'`),
        request("human-monitor-command", { "command-line": "info block" })
      )
      assert.deepStrictEqual(
        read(`x a="two words" b=[1, 2] c={"d": null} e.f.g=1 e.f.h=x`),
        request("x", { a: "two words", b: [1, 2], c: { d: null }, e: { f: { g: 1, h: "x" } } })
      )
      assert.deepStrictEqual(read("x size=18446744073709551615"), request("x", { size: 18446744073709551615n }))
    }))

  it.effect("sends a JSON request as it is, and says what is wrong with one that is not a request", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(read(`{"execute": "quit"}`), request("quit"))
      assert.deepStrictEqual(
        read(`{"execute": "x", "arguments": {"n": 9007199254740993}}`),
        request("x", { n: 9007199254740993n })
      )
      assert.include(reason(`{"execute": 1}`), `"execute" (a command name)`)
      assert.deepStrictEqual(read(`{"execute": "x", "id": 1}`), { left: `unexpected member "id" next to "execute"` })
      assert.deepStrictEqual(read(`{"execute": "x", "arguments": []}`), { left: `"arguments" must be an object` })
      assert.match(reason(`{"execute": `), /^not JSON: /)
    }))

  it.effect("refuses malformed lines with the reason instead of guessing", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(read("x oops"), { left: `"oops" is not name=value` })
      assert.deepStrictEqual(read("x =1"), { left: `"=1" is not name=value` })
      assert.deepStrictEqual(read("x a=1 a=2"), { left: "a is given twice" })
      assert.deepStrictEqual(read("x a=1 a.b=2"), { left: "a.b sets a member inside a, which already has a value" })
      assert.deepStrictEqual(read("x a..b=1"), { left: `"a..b" is not a member name` })
      assert.deepStrictEqual(read(`x a="open`), { left: `unterminated " quote` })
      assert.deepStrictEqual(read("x a=[1, 2"), { left: "unbalanced brackets" })
      assert.match(reason(`x a={"b": }`), /^a: \{"b": \} is not valid JSON/)
    }))

  it.effect("leaves on quit and exit, and skips blank lines", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(read(" quit "), { right: { _tag: "Leave" } })
      assert.deepStrictEqual(read("exit"), { right: { _tag: "Leave" } })
      assert.deepStrictEqual(read("   "), { right: { _tag: "Blank" } })
    }))
})

describe("the qmp shell's completion", () => {
  const schema = JSON.parse(
    Fs.readFileSync(Path.join(root, "test/fixtures/qmp-schemas/qemu-10.0.0-x86_64.json"), "utf8")
  )
  const complete = completer(catalogFromSchema(schema))

  it.effect("completes command names, then the argument names of that command not given yet", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(complete("query-statu"), [["query-status"], "query-statu"])
      assert.deepStrictEqual(complete("query-stat")[0], ["query-stats", "query-stats-schemas", "query-status"])
      assert.deepStrictEqual(complete("blockdev-del "), [["node-name="], ""])
      assert.deepStrictEqual(complete("human-monitor-command comm"), [["command-line="], "comm"])
      assert.deepStrictEqual(complete("qom-get path=/machine ")[0], ["property="])
      assert.deepStrictEqual(complete("qom-get path=/mach"), [[], "path=/mach"])
      assert.deepStrictEqual(complete(`{"execute": "qu`), [[], `{"execute": "qu`])
    }))

  it.effect("knows every command of the schema, and reads query-commands when that is all there is", () =>
    Effect.sync(() => {
      const commands = Schema.decodeUnknownSync(Schema.Array(Schema.Struct({ "meta-type": Schema.String })))(schema)
        .filter((info) => info["meta-type"] === "command").length
      assert.strictEqual(catalogFromSchema(schema).commands.length, commands)
      assert.deepStrictEqual(catalogFromCommands([{ name: "quit" }, { name: "cont" }, { nope: 1 }, 3]), {
        commands: ["cont", "quit"],
        argumentsOf: new Map()
      })
      assert.deepStrictEqual(catalogFromSchema({ not: "a list" }).commands, [])
    }))
})

describe("the qmp shell's output", () => {
  it.effect("indents JSON by two spaces and writes big integers exactly", () =>
    Effect.sync(() => {
      assert.strictEqual(
        pretty({ return: { size: 18446744073709551615n, list: [1] } }),
        `{\n  "return": {\n    "size": 18446744073709551615,\n    "list": [\n      1\n    ]\n  }\n}`
      )
      const reply = { return: [{ a: "x\u0000\"", b: null, c: [], d: {}, e: 1.5, f: -9007199254740993n }] }
      assert.strictEqual(
        pretty(reply),
        JSON.stringify({ ...reply, return: [{ ...reply.return[0], f: 0 }] }, null, 2).replace(
          `"f": 0`,
          `"f": -9007199254740993`
        )
      )
    }))
})
