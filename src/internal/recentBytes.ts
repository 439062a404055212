/**
 * Recent console output, kept in bounded memory.
 *
 * @internal
 */

const utf8 = new TextDecoder()

/** The last `capacity` bytes of output, with absolute offsets counted from the first byte ever read. */
export class RecentBytes {
  /**
   * The newest chunks, kept as they arrived rather than copied into a ring: copying every byte of
   * a flood cost as much as reading it. They hold at most `capacity` bytes plus one chunk.
   */
  private chunks: Array<Uint8Array> = []
  private held = 0
  /** Bytes ever appended; the absolute offset just past the newest byte. */
  end = 0

  constructor(readonly capacity: number) {}

  get start(): number {
    return Math.max(0, this.end - this.capacity)
  }

  /** Appends chunks in order. */
  appendAll(chunks: ReadonlyArray<Uint8Array>): void {
    for (const chunk of chunks) this.append(chunk)
  }

  append(chunk: Uint8Array): void {
    this.end += chunk.length
    if (chunk.length >= this.capacity) {
      this.chunks = [chunk.subarray(chunk.length - this.capacity)]
      this.held = this.capacity
      return
    }
    this.chunks.push(chunk)
    this.held += chunk.length
    while (this.held - this.chunks[0].length >= this.capacity) this.held -= this.chunks.shift()!.length
  }

  /** The bytes from absolute offset `from` (or the oldest kept) to the end, copied. */
  from(from: number): Uint8Array {
    const begin = Math.max(from, this.start)
    const out = new Uint8Array(this.end - begin)
    // Walk back from the newest chunk, copying the part of each that lies at or after `begin`.
    let chunkEnd = this.end
    for (let index = this.chunks.length - 1; index >= 0 && chunkEnd > begin; index--) {
      const chunk = this.chunks[index]
      const chunkStart = chunkEnd - chunk.length
      const skip = Math.max(0, begin - chunkStart)
      out.set(skip === 0 ? chunk : chunk.subarray(skip), chunkStart + skip - begin)
      chunkEnd = chunkStart
    }
    return out
  }

  /** The text from absolute offset `from`, starting on a character boundary, and the offset it starts at. */
  text(from: number): { readonly offset: number; readonly text: string } {
    const bytes = this.from(from)
    let skip = 0
    // a window cut inside a multi-byte character starts at the next whole one
    while (skip < 3 && skip < bytes.length && (bytes[skip] & 0xc0) === 0x80) skip++
    return { offset: Math.max(from, this.start) + skip, text: utf8.decode(bytes.subarray(skip)) }
  }
}
