/**
 * The listener QEMU connects to as a client when the monitor is a UNIX or TCP socket (QEMU's
 * `-chardev socket,...` without `server`): made before QEMU is spawned, holding QEMU's
 * connection until the session takes it, removing only the socket file it made.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import type { Duplex } from "node:stream"
import { escape as escapeOption } from "../CommandLine.js"
import type { ResolvedConfig } from "../MachineConfig.js"
import { LaunchError } from "../MachineError.js"

export interface Listener {
  readonly chardev: string
  readonly path?: string
  /** The identity of the socket file this listener created (see `identity`). */
  readonly created?: string | undefined
  /** QEMU's connection, once it has come. */
  readonly accept: Effect.Effect<Duplex>
  readonly release: () => void
}

/** A listener QEMU connects to as a client, for the UNIX and TCP monitor modes. */
export const listenForMonitor = (config: ResolvedConfig, tempDir: string) =>
  Effect.acquireRelease(
    Effect.async<Listener, LaunchError>((resume) => {
      const monitor = config.monitor
      // The first connection is QEMU's; it is held here until taken, and destroyed with the
      // listener either way, so an interrupted launch cannot leave it open. Later ones are refused.
      let accepted: Net.Socket | undefined
      let taker: ((socket: Net.Socket) => void) | undefined
      const server = Net.createServer((socket) => {
        if (accepted !== undefined) return void socket.destroy()
        accepted = socket
        server.close()
        taker?.(socket)
      })
      const accept = Effect.async<Duplex>((resumeAccept) => {
        if (accepted !== undefined) return resumeAccept(Effect.succeed(accepted))
        taker = (socket) => resumeAccept(Effect.succeed(socket))
        return Effect.sync(() => {
          taker = undefined
        })
      })
      const release = () => {
        server.close()
        accepted?.destroy()
      }
      const fail = (cause: Error) =>
        resume(Effect.fail(
          new LaunchError({
            reason: "MonitorFailed",
            name: config.name,
            detail: `cannot listen for the QMP monitor: ${cause.message}`,
            commandLine: [],
            cause
          })
        ))
      server.once("error", fail)
      if (monitor._tag === "Unix") {
        const path = monitor.path ?? Path.join(config.sockDir ?? tempDir, `${config.name}-qmp.sock`)
        server.listen(path, () => {
          server.off("error", fail)
          try {
            Fs.chmodSync(path, 0o600)
          } catch (cause) {
            // Thrown here it would be uncaught: it crashed the process and the launch never ended.
            server.close()
            return fail(cause as Error)
          }
          // What this listener created, to remove on release only if it is still the same file.
          const created = identity(path)
          resume(
            Effect.succeed({ chardev: `socket,id=mon,path=${escapeOption(path)}`, path, created, accept, release })
          )
        })
      } else if (monitor._tag === "Tcp") {
        server.listen({ host: monitor.host, port: monitor.port }, () => {
          server.off("error", fail)
          const { port } = server.address() as Net.AddressInfo
          resume(
            Effect.succeed({
              chardev: `socket,id=mon,host=${escapeOption(monitor.host)},port=${port}`,
              accept,
              release
            })
          )
        })
      }
    }),
    ({ created, path, release }) =>
      Effect.sync(() => {
        release()
        // Another machine may listen on this path by now (same name and sockDir): unlink only
        // the socket this listener made.
        if (path !== undefined && created !== undefined && identity(path) === created) Fs.rmSync(path, { force: true })
      })
  )

/** A file's identity (device and inode), or undefined when it does not exist. */
const identity = (path: string): string | undefined => {
  try {
    const stat = Fs.lstatSync(path, { bigint: true })
    return `${stat.dev}:${stat.ino}`
  } catch {
    return undefined
  }
}
