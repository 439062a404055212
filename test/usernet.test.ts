import { describe, expect, it } from "@effect/vitest"
import { connectionsTo, forwardedPorts, isAccepted, netArgs, parseUsernet } from "../src/internal/usernet.js"

// as QEMU 7.2 prints it, with a second netdev of the caller's
const text = [
  "Hub -1 (user0):",
  "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ",
  "  TCP[HOST_FORWARD]   9       127.0.0.1  5555       10.0.2.15    22     0     0",
  "Hub -1 (eqnet0):",
  "  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ",
  "  TCP[CLOSE_WAIT]    18       127.0.0.1 45431       10.0.2.15  8080     0     0",
  "  TCP[SYN_SENT]      14       127.0.0.1 45431       10.0.2.15  8080     0     0",
  "  TCP[HOST_FORWARD]  10       127.0.0.1 45431       10.0.2.15  8080     0     0",
  "  TCP[HOST_FORWARD]   3       127.0.0.1 33149       10.0.2.15    22     0     0",
  "  UDP[236 sec]       12       127.0.0.1 40000       10.0.2.15    53     0     0",
  ""
].join("\r\n")

describe("info usernet", () => {
  it("reads the host port of each forward of the library's netdev only", () => {
    expect([...forwardedPorts(parseUsernet(text, "eqnet0"))]).toEqual([[8080, 45431], [22, 33149]])
    expect([...forwardedPorts(parseUsernet(text, "user0"))]).toEqual([[22, 5555]])
    expect(parseUsernet(text, "other")).toEqual([])
  })

  it("tells the connections through a forward and whether the guest accepted them", () => {
    const connections = connectionsTo(parseUsernet(text, "eqnet0"), 8080)
    expect([...connections]).toEqual([[18, "CLOSE_WAIT"], [14, "SYN_SENT"]])
    expect(isAccepted("CLOSE_WAIT")).toBe(true)
    expect(isAccepted("SYN_SENT")).toBe(false)
    expect(connectionsTo(parseUsernet(text, "eqnet0"), 53).size).toBe(0)
  })

  it("puts each guest port on a port 0 forward bound to 127.0.0.1, and escapes the NIC model", () => {
    expect(netArgs([22, 8080], "virtio-net-pci,romfile=")).toEqual([
      "-netdev",
      "user,id=eqnet0,hostfwd=tcp:127.0.0.1:0-:22,hostfwd=tcp:127.0.0.1:0-:8080",
      "-device",
      "virtio-net-pci,,romfile=,netdev=eqnet0"
    ])
  })
})
