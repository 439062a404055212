import { assert, describe, expectTypeOf, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Schema from "effect/Schema"
import type * as Qemu from "../../src/generated/qemu.js"
import { QmpSchemas } from "../../src/generated/qemu.js"
import type {
  CheckedName,
  CommandArgs,
  CommandReturn,
  EventData,
  ExecuteParams,
  UntypedName
} from "../../src/QmpCommands.js"
import { untyped } from "../../src/QmpCommands.js"
import type { QmpEvent } from "../../src/QmpMessage.js"
import { isEvent } from "../../src/QmpMessage.js"

// The client's `execute` and `waitEvent` signatures, written against the surface alone. The
// functions return effects that are never run: only their types are under test.
interface ExecuteOptions {
  readonly timeout?: string
}
type Execute = <K extends string>(
  command: K,
  ...params: ExecuteParams<K, ExecuteOptions>
) => Effect.Effect<CommandReturn<K>, Error>
type WaitEvent = <K extends string>(name: K) => Effect.Effect<{ readonly event: K; readonly data: EventData<K> }>
const execute: Execute = () => Effect.die("not run")
const waitEvent: WaitEvent = () => Effect.die("not run")

type Success<T> = T extends Effect.Effect<infer A, infer _E, infer _R> ? A : never

// A vendor command merged into the map next to the generated ones, as an application would.
declare module "../../src/QmpCommands.js" {
  interface QmpCommandMap {
    readonly "__com.example_ping": {
      readonly args: { readonly count: number }
      readonly return: { readonly pong: true }
    }
  }
}

describe("the generated QMP surface, at the type level", () => {
  it("types a command without arguments, with no set-up, and its return as the schema says", () => {
    const status = execute("query-status")
    expectTypeOf<Success<typeof status>>().toEqualTypeOf<Qemu.QueryStatusReturn>()
    expectTypeOf<Success<typeof status>["running"]>().toEqualTypeOf<boolean>()
    expectTypeOf<"running">().toMatchTypeOf<Success<typeof status>["status"]>()
    expectTypeOf<CommandReturn<"query-block">>().toEqualTypeOf<ReadonlyArray<Qemu.QueryBlockReturnItem>>()
    expectTypeOf<CommandReturn<"human-monitor-command">>().toEqualTypeOf<string>()
    expectTypeOf<CommandReturn<"qom-get">>().toEqualTypeOf<unknown>()
    // @ts-expect-error a command without arguments takes none
    execute("query-status", { verbose: true })
    assert.isDefined(status)
  })

  it("rejects a wrong argument name, a wrong argument type and missing arguments", () => {
    execute("blockdev-del", { "node-name": "disk0" })
    // @ts-expect-error `nodename` is not a member of blockdev-del's arguments
    execute("blockdev-del", { nodename: "disk0" })
    // @ts-expect-error `node-name` is a string
    execute("blockdev-del", { "node-name": 1 })
    // @ts-expect-error blockdev-del needs its arguments
    execute("blockdev-del")
    // @ts-expect-error an enum member takes only its values
    execute("set-action", { shutdown: "explode" })
    expectTypeOf<CommandArgs<"blockdev-del">>().toEqualTypeOf<Qemu.BlockdevDelArgs>()
  })

  it("lets arguments be left out when all of them are optional", () => {
    execute("query-command-line-options")
    execute("query-command-line-options", { option: "drive" })
    execute("query-command-line-options", { option: "drive" }, { timeout: "1 second" })
  })

  it("narrows a flat union's members by its tag", () => {
    execute("blockdev-add", { driver: "file", "node-name": "disk0", filename: "/tmp/disk.img" })
    execute("blockdev-add", { driver: "null-co", "node-name": "null0", size: 1024 })
    // @ts-expect-error the file driver needs `filename`
    execute("blockdev-add", { driver: "file", "node-name": "disk0" })
    // @ts-expect-error `filename` belongs to the file driver, not to null-co
    execute("blockdev-add", { driver: "null-co", "node-name": "null0", filename: "/tmp/disk.img" })
    // @ts-expect-error not a block driver
    execute("blockdev-add", { driver: "floppy-in-a-drawer", "node-name": "x" })
  })

  it("keeps unknown commands callable, untyped, as the escape hatch", () => {
    const _reply = execute("x-not-in-this-qemu", { anything: [1, 2, 3] })
    expectTypeOf<Success<typeof _reply>>().toEqualTypeOf<unknown>()
    execute("x-not-in-this-qemu")
    expectTypeOf<CommandArgs<"x-not-in-this-qemu">>().toEqualTypeOf<Record<string, unknown> | undefined>()
  })

  it("types commands merged into QmpCommandMap by an application", () => {
    const _ping = execute("__com.example_ping", { count: 1 })
    expectTypeOf<Success<typeof _ping>>().toEqualTypeOf<{ readonly pong: true }>()
    // @ts-expect-error `count` is a number
    execute("__com.example_ping", { count: "1" })
  })

  it("types event data, and events without data as undefined", () => {
    const _shutdown = waitEvent("SHUTDOWN")
    expectTypeOf<Success<typeof _shutdown>["data"]["guest"]>().toEqualTypeOf<boolean>()
    expectTypeOf<"host-qmp-quit">().toMatchTypeOf<EventData<"SHUTDOWN">["reason"]>()
    expectTypeOf<EventData<"STOP">>().toEqualTypeOf<undefined>()
    expectTypeOf<EventData<"X_UNKNOWN_EVENT">>().toEqualTypeOf<Record<string, unknown> | undefined>()
  })

  it("pairs every command and event with a Schema of the same type", () => {
    expectTypeOf(QmpSchemas.commands["query-status"].return).toEqualTypeOf<
      Schema.Schema<CommandReturn<"query-status">>
    >()
    expectTypeOf(QmpSchemas.events.SHUTDOWN).toEqualTypeOf<Schema.Schema<EventData<"SHUTDOWN">>>()
    assert.include(Object.keys(QmpSchemas.commands), "query-status")
  })
})

describe("the real client's signatures, at the type level", () => {
  // Never run: a client of type QmpClient is only needed for its types.
  const client = undefined as unknown as import("../../src/Qmp.js").QmpClient

  it("types execute's arguments and result through QmpClient", () => {
    if (client === undefined) return
    expectTypeOf<Success<ReturnType<typeof client.execute<"query-status">>>>().toEqualTypeOf<Qemu.QueryStatusReturn>()
    // @ts-expect-error: qom-list-types has no member "abstrac"
    client.execute("qom-list-types", { abstrac: true })
    // @ts-expect-error: "abstract" is a boolean
    client.execute("qom-list-types", { abstract: "yes" })
    // @ts-expect-error: qom-get needs its arguments
    client.execute("qom-get")
    // Unknown commands stay callable, untyped.
    expectTypeOf<Success<ReturnType<typeof client.execute<"x-vendor-thing">>>>().toEqualTypeOf<unknown>()
  })

  it("types waitEvent's data, and narrows event streams by name", () => {
    if (client === undefined) return
    type Shutdown = Success<ReturnType<typeof client.waitEvent<"SHUTDOWN">>>
    expectTypeOf<Shutdown["data"]["guest"]>().toEqualTypeOf<boolean>()
    type Job = Success<ReturnType<typeof client.waitEvent<"BLOCK_JOB_COMPLETED">>>
    expectTypeOf<Job["data"]["device"]>().toEqualTypeOf<string>()
    const event = undefined as unknown as QmpEvent
    if (isEvent("STOP")(event)) expectTypeOf(event).toEqualTypeOf<QmpEvent<"STOP">>()
  })
})

describe("names, event patterns and free-form arguments, through QmpClient", () => {
  // Never run: only the types of these calls are under test.
  const client = undefined as unknown as import("../../src/Qmp.js").QmpClient

  it("catches a misspelt command or event name, and reaches unknown ones through untyped", () => {
    if (client === undefined) return
    // @ts-expect-error: a typo of query-status
    client.execute("query-stauts")
    // @ts-expect-error: a typo of BLOCK_JOB_COMPLETED
    client.waitEvent("BLOCK_JOB_COMPLETD")
    // @ts-expect-error: one typo among several names
    client.waitEvent(["STOP", "RESUM"])
    const _any = client.execute(untyped("x-query-new-thing"), { verbose: true })
    expectTypeOf<Success<typeof _any>>().toEqualTypeOf<unknown>()
    const computed: string = "query-" + "status"
    const _computed = client.execute(computed)
    expectTypeOf<Success<typeof _computed>>().toEqualTypeOf<unknown>()
    const _both = client.waitEvent(["STOP", "RESUME"])
    expectTypeOf<Success<typeof _both>["event"]>().toEqualTypeOf<"STOP" | "RESUME">()
    const _vendor = client.waitEvent(untyped("__com.example_EVENT"))
    expectTypeOf<Success<typeof _vendor>["data"]>().toEqualTypeOf<Record<string, unknown> | undefined>()
  })

  it("in strict mode, refuses names typed only as string but still takes untyped ones", () => {
    type Known = "query-status" | "stop"
    expectTypeOf<CheckedName<"stop", Known, true>>().toEqualTypeOf<"stop">()
    expectTypeOf<CheckedName<"stpo", Known, true>>().toEqualTypeOf<Known>()
    expectTypeOf<CheckedName<string, Known, true>>().toEqualTypeOf<Known>()
    expectTypeOf<CheckedName<string, Known, false>>().toEqualTypeOf<string>()
    expectTypeOf<CheckedName<UntypedName, Known, true>>().toEqualTypeOf<UntypedName>()
  })

  it("types executeAndWait's arguments like execute's, and its match against the event", () => {
    if (client === undefined) return
    const _deleted = client.executeAndWait("device_del", {
      args: { id: "nic1" },
      event: "DEVICE_DELETED",
      match: { data: { device: "nic1" } },
      timeout: "10 seconds"
    })
    expectTypeOf<Success<typeof _deleted>[1]["data"]["device"]>().toEqualTypeOf<string | undefined>()
    client.executeAndWait("stop", { event: "STOP" })
    client.executeAndWait("device_del", {
      args: { id: "nic1" },
      event: "DEVICE_DELETED",
      match: (event) => event.data.path.endsWith("/nic1")
    })
    // @ts-expect-error: device_del needs its arguments
    client.executeAndWait("device_del", { event: "DEVICE_DELETED" })
    // @ts-expect-error: `ids` is not an argument of device_del
    client.executeAndWait("device_del", { args: { ids: "nic1" }, event: "DEVICE_DELETED" })
    client.executeAndWait("device_del", {
      args: { id: "n" },
      event: "DEVICE_DELETED",
      // @ts-expect-error: `devcie` is not a member of DEVICE_DELETED's data
      match: { data: { devcie: "n" } }
    })
    // @ts-expect-error: a misspelt event
    client.executeAndWait("stop", { event: "STPO" })
    client.waitEvent("SHUTDOWN", { match: { data: { reason: "host-qmp-quit" } } })
    // @ts-expect-error: not a shutdown reason
    client.waitEvent("SHUTDOWN", { match: { data: { reason: "bored" } } })
    client.waitEvent("SHUTDOWN", { match: { data: { guest: null } } })
  })

  it("lets free-form commands take members their schema does not list", () => {
    if (client === undefined) return
    client.execute("device_add", { driver: "virtio-net-pci", id: "nic1", "socket-id": 0, mac: "52:54:00:12:34:56" })
    // @ts-expect-error: `driver` is still required and a string
    client.execute("device_add", { driver: 1, id: "nic1" })
    // @ts-expect-error: other commands still refuse unknown members
    client.execute("blockdev-del", { "node-name": "d", force: true })
  })

  it("takes a bigint wherever QAPI has an integer, and says a reply's integer may be one", () => {
    if (client === undefined) return
    client.execute("block_resize", { "node-name": "disk0", size: 18446744073709551104n })
    client.execute("block_resize", { "node-name": "disk0", size: 1024 })
    expectTypeOf<EventData<"BLOCK_JOB_COMPLETED">["offset"]>().toEqualTypeOf<number | bigint>()
  })
})
