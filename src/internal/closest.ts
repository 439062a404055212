/**
 * "Did you mean ...?": the known name closest to a misspelt one.
 *
 * @internal
 */

/** `-` and `_` are interchangeable in QEMU's names as people type them, case too. */
const normalize = (name: string): string => name.toLowerCase().replaceAll("_", "-")

/**
 * Edit distance with adjacent transpositions counted as one edit (optimal string alignment),
 * giving up as soon as it must exceed `limit` (then `limit + 1` is returned).
 */
export const editDistance = (a: string, b: string, limit: number): number => {
  if (Math.abs(a.length - b.length) > limit) return limit + 1
  let before = new Array<number>(b.length + 1).fill(0)
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    let rowMin = i
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let value = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) value = Math.min(value, before[j - 2] + 1)
      current.push(value)
      rowMin = Math.min(rowMin, value)
    }
    if (rowMin > limit) return limit + 1
    before = previous
    previous = current
  }
  return Math.min(previous[b.length], limit + 1)
}

/**
 * The name in `names` closest to `name`, if one is close enough to be a likely misspelling: at
 * most 2 edits, and at most a third of the name's length. Ties go to the alphabetically first.
 */
export const closestName = (name: string, names: Iterable<string>): string | undefined => {
  const wanted = normalize(name)
  const limit = Math.min(2, Math.floor(wanted.length / 3))
  let best: string | undefined
  let bestDistance = limit + 1
  for (const candidate of names) {
    const distance = editDistance(wanted, normalize(candidate), limit)
    if (distance > limit) continue
    if (best === undefined || distance < bestDistance || (distance === bestDistance && candidate < best)) {
      best = candidate
      bestDistance = distance
    }
  }
  return best
}
