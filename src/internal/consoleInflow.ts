/**
 * Reading a console socket in batches.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type { Duplex } from "node:stream"
import * as Metering from "./metering.js"

/** How much output may wait in memory, read and not yet processed, before the socket is paused. */
const inflowLimit = 16 * 1024 * 1024

/**
 * What the socket delivers, taken in batches. The socket flows while the reader keeps up and is
 * paused once `inflowLimit` bytes wait, so an unread console pushes back on QEMU. Reading in
 * flowing mode lets Node read many chunks per turn of the event loop; a paused stream read with
 * `read()` stops and restarts the descriptor for every 64 KiB chunk, and the reader would pay a
 * resumption for each.
 */
export const inflow = (
  socket: Duplex,
  /**
   * Offered each chunk as it arrives while nothing is queued; returns true if it took the chunk
   * there and then. A chunk dropped at once is never promoted by the collector: holding every
   * chunk until the reader's next turn made a drained console's garbage old and costly.
   */
  consume: (chunk: Buffer) => boolean,
  /** Called once per turn of the event loop after `consume` took chunks. */
  consumed: () => void
) => {
  let chunks: Array<Buffer> = []
  let bytes = 0
  let ended = socket.readableEnded || socket.destroyed
  let wake: (() => void) | undefined
  // The reader is woken once per turn of the event loop, after every chunk that turn read has
  // arrived: waking it per 64 KiB chunk cost more than the reading itself.
  let wakeScheduled = false
  let tookDirectly = false
  const wakeSoon = () => {
    if (wakeScheduled) return
    wakeScheduled = true
    setImmediate(() => {
      wakeScheduled = false
      if (tookDirectly) {
        tookDirectly = false
        consumed()
      }
      wake?.()
    })
  }
  socket.on("data", (chunk: Buffer | string) => {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk
    Metering.consoleBytes("in", buffer.length)
    if (bytes === 0 && consume(buffer)) {
      tookDirectly = true
      return wakeSoon()
    }
    chunks.push(buffer)
    bytes += buffer.length
    if (bytes >= inflowLimit) socket.pause()
    if (wake !== undefined) wakeSoon()
  })
  const finish = () => {
    ended = true
    wake?.()
  }
  socket.on("end", finish)
  socket.on("close", finish)
  socket.pause()

  /** The chunks waiting, in order, or `null` once the stream ended or failed and nothing waits. */
  const take: Effect.Effect<ReadonlyArray<Buffer> | null> = Effect.async<ReadonlyArray<Buffer> | null>((resume) => {
    const attempt = (): boolean => {
      if (bytes > 0) {
        // Handed over as they came: joining them would copy every byte once more.
        const batch = chunks
        chunks = []
        bytes = 0
        wake = undefined
        if (!ended) socket.resume()
        resume(Effect.succeed(batch))
        return true
      }
      if (ended) {
        wake = undefined
        resume(Effect.succeed(null))
        return true
      }
      return false
    }
    if (attempt()) return
    wake = attempt
    socket.resume()
    return Effect.sync(() => {
      wake = undefined
    })
  })
  return { take }
}
