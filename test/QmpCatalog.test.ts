import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import { closestName, editDistance } from "../src/internal/closest.js"
import * as Qmp from "../src/Qmp.js"
import { untyped } from "../src/QmpCommands.js"
import { QmpCommandUnavailable } from "../src/QmpError.js"
import { answerDefault, fakePeer } from "./kit/fakePeer.js"
import { rawQemu } from "./kit/qemu.js"

const connectRaw = (options: Qmp.QmpOptions = {}) =>
  Effect.gen(function*() {
    const qemu = yield* rawQemu([])
    return yield* Qmp.make({ _tag: "Duplex", duplex: qemu.monitor }, options)
  })

/** A fake peer that records every command it is sent and answers `query-commands` with `names`. */
const recordingPeer = (names: ReadonlyArray<string> | "error") =>
  Effect.gen(function*() {
    const seen: Array<string> = []
    const path = yield* fakePeer({
      strict: true,
      onRequest: (request, peer) => {
        seen.push(String(request.execute))
        if (request.execute !== "query-commands") return answerDefault(request, peer)
        if (names === "error") peer.send({ error: { class: "GenericError", desc: "no" }, id: request.id })
        else peer.send({ return: names.map((name) => ({ name })), id: request.id })
      }
    })
    const qmp = yield* Qmp.make({ _tag: "Unix", path })
    return { qmp, seen }
  })

describe("Commands the running QEMU lacks", () => {
  it.scopedLive("fail with QmpCommandUnavailable naming QEMU's version, build and the command", () =>
    Effect.gen(function*() {
      const qmp = yield* connectRaw()
      const error = yield* Effect.flip(qmp.execute(untyped("no-such-command")))
      assert.instanceOf(error, QmpCommandUnavailable)
      const unavailable = error as QmpCommandUnavailable
      assert.strictEqual(unavailable.command, "no-such-command")
      assert.strictEqual(unavailable.version, qmp.version)
      assert.strictEqual(unavailable.package, qmp.greeting.QMP.version.package)
      assert.include(unavailable.message, `QEMU ${qmp.version}`)
      assert.include(unavailable.message, "\"no-such-command\"")
      // What QEMU itself says stays reachable through `raw`, which is never checked.
      const raw = yield* qmp.raw("no-such-command")
      assert.strictEqual((raw as { error: { class: string } }).error.class, "CommandNotFound")
    }))

  it.scopedLive("suggest the closest command this QEMU has for a misspelt one", () =>
    Effect.gen(function*() {
      const qmp = yield* connectRaw()
      const misspelt = yield* Effect.flip(qmp.execute(untyped("query-blokc")))
      assert.strictEqual((misspelt as QmpCommandUnavailable).suggestion, "query-block")
      assert.include(misspelt.message, "did you mean \"query-block\"?")
      const underscored = yield* Effect.flip(qmp.execute(untyped("query_hotpluggable_cpus")))
      assert.strictEqual((underscored as QmpCommandUnavailable).suggestion, "query-hotpluggable-cpus")
      const far = yield* Effect.flip(qmp.execute(untyped("launch-the-rockets")))
      assert.isUndefined((far as QmpCommandUnavailable).suggestion)
    }))

  it.scopedLive("a command QEMU has runs after the lookup, and so does one QEMU 7.2 lacks but 10.0 has", () =>
    Effect.gen(function*() {
      const qmp = yield* connectRaw()
      const block = yield* qmp.execute("query-block")
      assert.isArray(block)
      // `query-stats-schemas` is in QEMU 7.1+, `query-cryptodev` in 8.0+: one runs here, the other is refused before 8.0.
      const stats = yield* qmp.execute("query-stats-schemas")
      assert.isArray(stats)
      const [major] = qmp.version.split(".").map(Number)
      if (major < 8) {
        const missing = yield* Effect.flip(qmp.execute(untyped("query-cryptodev")))
        assert.strictEqual(missing._tag, "QmpCommandUnavailable")
      }
    }))

  it.scopedLive("with checkCommands false, QEMU answers CommandNotFound itself", () =>
    Effect.gen(function*() {
      const qmp = yield* connectRaw({ checkCommands: false })
      const error = yield* Effect.flip(qmp.execute(untyped("no-such-command")))
      assert.strictEqual(error._tag, "QmpCommandError")
      assert.strictEqual((error as { errorClass: string }).errorClass, "CommandNotFound")
    }))

  it.scopedLive("the list is asked for once, by concurrent first calls, and refused calls send nothing", () =>
    Effect.gen(function*() {
      const { qmp, seen } = yield* recordingPeer(["query-block", "query-cpus-fast"])
      const results = yield* Effect.all(
        Array.from({ length: 8 }, (_, i) => Effect.either(qmp.execute(untyped(i % 2 ? "query-block" : "nope")))),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(results.filter((result) => result._tag === "Right").length, 4)
      yield* Effect.flip(qmp.execute(untyped("nope-again")))
      assert.deepStrictEqual(seen.filter((name) => name === "query-commands"), ["query-commands"])
      assert.notInclude(seen, "nope")
      assert.notInclude(seen, "nope-again")
      assert.strictEqual(seen.filter((name) => name === "query-block").length, 4)
    }))

  it.scopedLive("core commands never cost the lookup", () =>
    Effect.gen(function*() {
      const { qmp, seen } = yield* recordingPeer([])
      yield* qmp.execute("query-status")
      yield* qmp.execute("qom-list", { path: "/" })
      assert.notInclude(seen, "query-commands")
    }))

  it.scopedLive("a peer that cannot list its commands gets every command sent, unchecked", () =>
    Effect.gen(function*() {
      const { qmp, seen } = yield* recordingPeer("error")
      const reply = yield* qmp.execute(untyped("anything-at-all"))
      assert.deepStrictEqual(reply, { echo: "anything-at-all" })
      assert.include(seen, "anything-at-all")
    }))

  it.scopedLive("with checkArgs, the schema already fetched serves the check without query-commands", () =>
    Effect.gen(function*() {
      const qmp = yield* connectRaw({ checkArgs: true })
      const error = yield* Effect.flip(qmp.execute(untyped("no-such-command")))
      assert.strictEqual(error._tag, "QmpCommandUnavailable")
    }))
})

describe("closestName", () => {
  it("counts a transposition as one edit and gives up past the limit", () => {
    assert.strictEqual(editDistance("stauts", "status", 2), 1)
    assert.strictEqual(editDistance("abc", "abd", 2), 1)
    assert.strictEqual(editDistance("kitten", "sitting", 2), 3)
    assert.strictEqual(editDistance("a", "abcdef", 2), 3)
  })

  it("prefers the nearer name and breaks ties alphabetically", () => {
    assert.strictEqual(closestName("query-stauts", ["query-status", "query-name"]), "query-status")
    assert.strictEqual(closestName("query-blokc", ["query-block", "query-blockstats"]), "query-block")
    assert.strictEqual(closestName("query-xyz", ["query-xya", "query-xyb"]), "query-xya")
    assert.isUndefined(closestName("ab", ["ac"]))
  })

  it("finds the commands of a real schema from one-edit misspellings", () => {
    const schema = JSON.parse(
      Fs.readFileSync(new URL("./fixtures/qmp-schemas/qemu-10.0.0-x86_64.json", import.meta.url), "utf8")
    ) as ReadonlyArray<{ name: string; "meta-type": string }>
    const names = schema.filter((entry) => entry["meta-type"] === "command").map((entry) => entry.name)
    for (const name of names.filter((name) => name.length >= 9)) {
      const misspelt = name.slice(0, 3) + name.slice(4)
      const found = closestName(misspelt, names)
      assert.isDefined(found, misspelt)
      assert.strictEqual(editDistance(misspelt, found!, 2), 1, `${misspelt} -> ${found}`)
    }
  })
})
