import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { catalogFromCommands, catalogFromSchema, completer, parseLine, pretty } from "../../src/cli/qmpInput.js"
import { root } from "../kit/cli.js"

const request = (command: string, args?: Record<string, unknown>) =>
  Either.right({ _tag: "Request", request: { command, arguments: args } })

describe("the qmp shell's input", () => {
  it.effect("reads `command name=value ...` with JSON values, plain text and nested names", () =>
    Effect.sync(() => {
      expect(parseLine("query-status")).toEqual(request("query-status"))
      expect(parseLine("  blockdev-add driver=null-co node-name=n0 size=1048576 read-only=true")).toEqual(
        request("blockdev-add", { driver: "null-co", "node-name": "n0", size: 1048576, "read-only": true })
      )
      expect(parseLine(`human-monitor-command command-line='info block'`)).toEqual(
        request("human-monitor-command", { "command-line": "info block" })
      )
      expect(parseLine(`x a="two words" b=[1, 2] c={"d": null} e.f.g=1 e.f.h=x`)).toEqual(
        request("x", { a: "two words", b: [1, 2], c: { d: null }, e: { f: { g: 1, h: "x" } } })
      )
      expect(parseLine("x size=18446744073709551615")).toEqual(request("x", { size: 18446744073709551615n }))
    }))

  it.effect("sends a JSON request as it is, and says what is wrong with one that is not a request", () =>
    Effect.sync(() => {
      expect(parseLine(`{"execute": "quit"}`)).toEqual(request("quit"))
      expect(parseLine(`{"execute": "x", "arguments": {"n": 9007199254740993}}`)).toEqual(
        request("x", { n: 9007199254740993n })
      )
      expect(parseLine(`{"execute": 1}`)).toEqual(Either.left(expect.stringContaining(`"execute" (a command name)`)))
      expect(parseLine(`{"execute": "x", "id": 1}`)).toEqual(Either.left(`unexpected member "id" next to "execute"`))
      expect(parseLine(`{"execute": "x", "arguments": []}`)).toEqual(Either.left(`"arguments" must be an object`))
      expect(parseLine(`{"execute": `)).toEqual(Either.left(expect.stringMatching(/^not JSON: /)))
    }))

  it.effect("refuses malformed lines with the reason instead of guessing", () =>
    Effect.sync(() => {
      expect(parseLine("x oops")).toEqual(Either.left(`"oops" is not name=value`))
      expect(parseLine("x =1")).toEqual(Either.left(`"=1" is not name=value`))
      expect(parseLine("x a=1 a=2")).toEqual(Either.left("a is given twice"))
      expect(parseLine("x a=1 a.b=2")).toEqual(Either.left("a.b sets a member inside a, which already has a value"))
      expect(parseLine("x a..b=1")).toEqual(Either.left(`"a..b" is not a member name`))
      expect(parseLine(`x a="open`)).toEqual(Either.left(`unterminated " quote`))
      expect(parseLine("x a=[1, 2")).toEqual(Either.left("unbalanced brackets"))
      expect(parseLine(`x a={"b": }`)).toEqual(Either.left(expect.stringMatching(/^a: \{"b": \} is not valid JSON/)))
    }))

  it.effect("leaves on quit and exit, and skips blank lines", () =>
    Effect.sync(() => {
      expect(parseLine(" quit ")).toEqual(Either.right({ _tag: "Leave" }))
      expect(parseLine("exit")).toEqual(Either.right({ _tag: "Leave" }))
      expect(parseLine("   ")).toEqual(Either.right({ _tag: "Blank" }))
    }))
})

describe("the qmp shell's completion", () => {
  const schema = JSON.parse(
    Fs.readFileSync(Path.join(root, "test/fixtures/qmp-schemas/qemu-10.0.0-x86_64.json"), "utf8")
  )
  const complete = completer(catalogFromSchema(schema))

  it.effect("completes command names, then the argument names of that command not given yet", () =>
    Effect.sync(() => {
      expect(complete("query-statu")).toEqual([["query-status"], "query-statu"])
      expect(complete("query-stat")[0]).toEqual(["query-stats", "query-stats-schemas", "query-status"])
      expect(complete("blockdev-del ")).toEqual([["node-name="], ""])
      expect(complete("human-monitor-command comm")).toEqual([["command-line="], "comm"])
      expect(complete("qom-get path=/machine ")[0]).toEqual(["property="])
      expect(complete("qom-get path=/mach")).toEqual([[], "path=/mach"])
      expect(complete(`{"execute": "qu`)).toEqual([[], `{"execute": "qu`])
    }))

  it.effect("knows every command of the schema, and reads query-commands when that is all there is", () =>
    Effect.sync(() => {
      const commands = Schema.decodeUnknownSync(Schema.Array(Schema.Struct({ "meta-type": Schema.String })))(schema)
        .filter((info) => info["meta-type"] === "command").length
      expect(catalogFromSchema(schema).commands.length).toBe(commands)
      expect(catalogFromCommands([{ name: "quit" }, { name: "cont" }, { nope: 1 }, 3])).toEqual({
        commands: ["cont", "quit"],
        argumentsOf: new Map()
      })
      expect(catalogFromSchema({ not: "a list" }).commands).toEqual([])
    }))
})

describe("the qmp shell's output", () => {
  it.effect("indents JSON by two spaces and writes big integers exactly", () =>
    Effect.sync(() => {
      expect(pretty({ return: { size: 18446744073709551615n, list: [1] } })).toBe(
        `{\n  "return": {\n    "size": 18446744073709551615,\n    "list": [\n      1\n    ]\n  }\n}`
      )
      const reply = { return: [{ a: "x\u0000\"", b: null, c: [], d: {}, e: 1.5, f: -9007199254740993n }] }
      expect(pretty(reply)).toBe(
        JSON.stringify({ ...reply, return: [{ ...reply.return[0], f: 0 }] }, null, 2).replace(
          `"f": 0`,
          `"f": -9007199254740993`
        )
      )
    }))
})
