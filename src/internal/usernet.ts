/**
 * User-mode networking (slirp) with TCP ports forwarded from the host: the command line that sets
 * it up and the reading of `info usernet`, where QEMU shows the host ports it bound and the state
 * of each forwarded connection.
 *
 * QEMU binds every forward itself, on 127.0.0.1 port 0 (`hostfwd=tcp:127.0.0.1:0-:22`), so the
 * kernel picks a free port and nothing can take it between choosing and binding: there is no
 * "bind port 0, release, hand the number to QEMU" race to retry. QEMU 7.2 (libslirp 4.7) accepts
 * `hostfwd=` on `-netdev user` and reports the port it got in `info usernet`.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import { escape } from "../CommandLine.js"
import type { QmpClient } from "../Qmp.js"

/** The id of the library's netdev and NIC. */
export const netdevId = "eqnet0"

/** The `-netdev` and `-device` arguments for a NIC on user networking with `ports` forwarded. */
export const netArgs = (ports: ReadonlyArray<number>, nicModel: string): ReadonlyArray<string> => {
  const forwards = ports.map((port) => `,hostfwd=tcp:127.0.0.1:0-:${port}`).join("")
  return [
    "-netdev",
    `user,id=${netdevId}${forwards}`,
    "-device",
    `${escape(nicModel)},netdev=${netdevId}`
  ]
}

/** Whether QEMU's log says it refused the library's netdev or NIC (both options name its id). */
export const refusedNetwork = (log: string): boolean => log.includes(netdevId)

/** One row of `info usernet`: a forward (`HOST_FORWARD`) or a connection through one. */
export interface UsernetRow {
  readonly protocol: string
  readonly state: string
  readonly fd: number
  readonly sourceAddress: string
  readonly sourcePort: number
  readonly destAddress: string
  readonly destPort: number
}

const rowPattern = /^\s*(TCP|UDP)\[([A-Z_0-9 ]+?)\]\s+(-?\d+)\s+(\S+)\s+(\d+)\s+(\S+)\s+(\d+)\b/
/** A netdev's header, e.g. `Hub -1 (eqnet0):` (older QEMUs say `VLAN`). */
const headerPattern = /\(([^()\s]+)\):\s*$/

/** The rows of `info usernet` that belong to the netdev `id`; lines that are no row are skipped. */
export const parseUsernet = (text: string, id: string): ReadonlyArray<UsernetRow> => {
  const rows: Array<UsernetRow> = []
  let inside = false
  for (const line of text.split(/\r?\n/)) {
    const header = headerPattern.exec(line)
    if (header !== null && !rowPattern.test(line)) {
      inside = header[1] === id
      continue
    }
    const match = inside ? rowPattern.exec(line) : null
    if (match === null) continue
    rows.push({
      protocol: match[1],
      state: match[2].trim(),
      fd: Number(match[3]),
      sourceAddress: match[4],
      sourcePort: Number(match[5]),
      destAddress: match[6],
      destPort: Number(match[7])
    })
  }
  return rows
}

/** The host port of each forwarded guest TCP port, as `info usernet` shows them. */
export const forwardedPorts = (rows: ReadonlyArray<UsernetRow>): ReadonlyMap<number, number> =>
  new Map(
    rows
      .filter((row) => row.protocol === "TCP" && row.state === "HOST_FORWARD")
      .map((row) => [row.destPort, row.sourcePort] as const)
  )

/**
 * States of a forwarded connection once the guest has accepted it: the handshake with the guest
 * completed (`SYN_SENT` means the guest has not answered yet).
 */
const acceptedStates = new Set([
  "ESTABLISHED",
  "CLOSE_WAIT",
  "FIN_WAIT_1",
  "FIN_WAIT_2",
  "CLOSING",
  "LAST_ACK",
  "TIME_WAIT"
])

/** The connections to `guestPort` (not the forward itself), by QEMU's descriptor. */
export const connectionsTo = (rows: ReadonlyArray<UsernetRow>, guestPort: number): ReadonlyMap<number, string> =>
  new Map(
    rows
      .filter((row) => row.protocol === "TCP" && row.state !== "HOST_FORWARD" && row.destPort === guestPort)
      .map((row) => [row.fd, row.state] as const)
  )

/** Whether a connection in `state` was accepted by the guest. */
export const isAccepted = (state: string): boolean => acceptedStates.has(state)

/**
 * Reads the host port QEMU bound for each of `ports` from `info usernet` (HMP over QMP); fails
 * with a sentence when one is missing or unusable (a QEMU that does not report the port it bound).
 */
export const readPorts = (
  qmp: QmpClient,
  ports: ReadonlyArray<number>
): Effect.Effect<ReadonlyMap<number, number>, string> =>
  ports.length === 0 ? Effect.succeed(new Map()) : qmp.hmp("info usernet").pipe(
    Effect.mapError((error) => `info usernet failed: ${error.message}`),
    Effect.flatMap((text) => {
      const forwarded = forwardedPorts(parseUsernet(text, netdevId))
      const missing = ports.filter((port) => !(forwarded.get(port)! > 0))
      if (missing.length === 0) return Effect.succeed(new Map(ports.map((port) => [port, forwarded.get(port)!])))
      return Effect.fail(
        `QEMU shows no bound host port for guest port ${missing.join(", ")} in info usernet:\n${text.trim()}`
      )
    })
  )
