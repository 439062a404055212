import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Net from "node:net"
import * as MachineConfig from "../src/MachineConfig.js"
import { networked } from "./kit/netGuest.js"

/** Connects to 127.0.0.1:port, sends `text` and half-closes, and returns all the server sent. */
const exchange = (port: number, text: string) =>
  Effect.async<string, Error>((resume) => {
    const chunks: Array<Buffer> = []
    const socket = Net.connect({ host: "127.0.0.1", port }, () => socket.end(text))
    socket.on("data", (chunk) => chunks.push(chunk))
    socket.on("error", (error) => resume(Effect.fail(error)))
    socket.on("close", () => resume(Effect.succeed(Buffer.concat(chunks).toString("utf8"))))
    return Effect.sync(() => socket.destroy())
  })

describe("Forwarded ports", () => {
  it.scopedLive("a guest nc -l answers on the host port the machine reports, both ways", () =>
    Effect.gen(function*() {
      const { shell, vm } = yield* networked([8080, 22])
      const http = vm.ports.get(8080)!
      const ssh = vm.ports.get(22)!
      expect([...vm.ports.keys()]).toEqual([8080, 22])
      expect(http).toBeGreaterThan(0)
      expect(ssh).toBeGreaterThan(0)
      expect(http).not.toBe(ssh)
      // the guest prints its greeting, keeps what the host sends, and closes when the host has
      yield* shell.run("(echo hello-from-guest | nc -l -p 8080 > /root/got) > /dev/null 2>&1 &")
      let answer = ""
      // nc may not be listening yet: the guest then resets the connection
      for (let attempt = 0; attempt < 50 && answer === ""; attempt++) {
        answer = yield* exchange(http, "from-host\n").pipe(Effect.orElseSucceed(() => ""))
        if (answer === "") yield* Effect.sleep("200 millis")
      }
      expect(answer).toBe("hello-from-guest\n")
      yield* shell.run("wait")
      expect(yield* shell.run("cat /root/got")).toEqual({ exitCode: 0, stdout: "from-host\n" })
    }))

  it.effect("a port listed twice, a NIC model without ports, or ports without QMP is refused, naming the field", () =>
    Effect.gen(function*() {
      const twice = yield* Effect.flip(MachineConfig.resolve({ ports: [22, 80, 22] }))
      expect(twice.field).toBe("ports.2")
      expect(twice.message).toContain("listed twice")
      const nic = yield* Effect.flip(MachineConfig.resolve({ nicModel: "e1000" }))
      expect(nic.field).toBe("nicModel")
      const noQmp = yield* Effect.flip(MachineConfig.resolve({ ports: [22], qmp: false }))
      expect(noQmp.field).toBe("ports")
      const range = yield* Effect.flip(MachineConfig.resolve({ ports: [0] }))
      expect(range.field).toBe("ports.0")
    }))
})
