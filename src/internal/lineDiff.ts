/**
 * A line diff for humans: which lines of the expected text are missing from the actual one and
 * which are new, with a little context around each change.
 *
 * @internal
 */

type Op = { readonly kind: " " | "-" | "+"; readonly line: string }

// Past this many cells the table would cost too much; the diff then shows both tails whole.
const maxCells = 4_000_000

/** The edit script from `a` to `b` through their longest common subsequence. */
const editScript = (a: ReadonlyArray<string>, b: ReadonlyArray<string>): Array<Op> => {
  const n = a.length
  const m = b.length
  const table = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1))
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1])
    }
  }
  const ops: Array<Op> = []
  let i = 0
  let j = 0
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      ops.push({ kind: " ", line: a[i++] })
      j++
    } else if (i < n && (j === m || table[i + 1][j] >= table[i][j + 1])) ops.push({ kind: "-", line: a[i++] })
    else ops.push({ kind: "+", line: b[j++] })
  }
  return ops
}

/** Keeps `context` unchanged lines around each change and elides the rest. */
const withContext = (ops: ReadonlyArray<Op>, context: number): Array<string> => {
  const near = (index: number) =>
    ops.slice(Math.max(0, index - context), index + context + 1).some((op) => op.kind !== " ")
  const out: Array<string> = []
  let skipped = 0
  ops.forEach((op, index) => {
    if (op.kind === " " && !near(index)) return void skipped++
    if (skipped > 0) out.push(`  ... (${skipped} equal line${skipped === 1 ? "" : "s"})`)
    skipped = 0
    out.push(`${op.kind} ${op.line}`)
  })
  if (skipped > 0) out.push(`  ... (${skipped} equal line${skipped === 1 ? "" : "s"})`)
  return out
}

/**
 * The difference between two texts, `-` for lines only in `expected` and `+` for lines only in
 * `actual`; empty when they are equal.
 */
export const lineDiff = (expected: string, actual: string, context = 3): string => {
  if (expected === actual) return ""
  const a = expected.split("\n")
  const b = actual.split("\n")
  let head = 0
  while (head < a.length && head < b.length && a[head] === b[head]) head++
  const ops: Array<Op> = a.slice(0, head).map((line) => ({ kind: " ", line }))
  const restA = a.slice(head)
  const restB = b.slice(head)
  if ((restA.length + 1) * (restB.length + 1) > maxCells) {
    ops.push(
      ...restA.map((line) => ({ kind: "-" as const, line })),
      ...restB.map((line) => ({ kind: "+" as const, line }))
    )
  } else {
    ops.push(...editScript(restA, restB))
  }
  return ["--- expected", "+++ actual", ...withContext(ops, context)].join("\n")
}
