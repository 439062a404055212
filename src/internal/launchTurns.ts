/**
 * Turns for launches: a fleet launched at once would run every machine's synchronous start-up
 * (config, checks, temp directory, the spawn request) back to back, holding the event loop for
 * all of them while the first QEMUs already greet. Each launch waits for a turn; one turn is
 * given per pass of the event loop, so that I/O is served between two launches. A lone launch
 * waits one `setImmediate`.
 *
 * @internal
 */
import * as Effect from "effect/Effect"

const waiting: Array<() => void> = []
let scheduled = false

const next = (): void => {
  scheduled = false
  const resume = waiting.shift()
  if (waiting.length > 0) {
    scheduled = true
    setImmediate(next)
  }
  resume?.()
}

/** Resumes once this launch's turn has come; an interrupted wait gives its place up. */
export const launchTurn: Effect.Effect<void> = Effect.async<void>((resume) => {
  const go = () => resume(Effect.void)
  waiting.push(go)
  if (!scheduled) {
    scheduled = true
    setImmediate(next)
  }
  return Effect.sync(() => {
    const index = waiting.indexOf(go)
    if (index >= 0) waiting.splice(index, 1)
  })
})
