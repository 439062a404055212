/**
 * Test kit: cutting a byte stream into chunks, for property tests of stream decoders that must
 * give the same result however the bytes arrive.
 */

/** Splits bytes at the given cut points (taken modulo the length, sorted). */
export const splitAt = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<Uint8Array> => {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b)
  const chunks: Array<Uint8Array> = []
  let start = 0
  for (const point of points) {
    chunks.push(bytes.subarray(start, point))
    start = point
  }
  chunks.push(bytes.subarray(start))
  return chunks
}
