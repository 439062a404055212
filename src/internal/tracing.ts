/**
 * The library's spans. Effect's built-in tracer records spans that nothing exports; building one
 * per QMP request cost about a third of the client's CPU per round trip, and a call-site stack
 * trace per launch was a visible share of a fleet's. So a span is made only when the application
 * has installed a tracer of its own (e.g. OpenTelemetry), which is also when someone sees it.
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import type * as Tracer from "effect/Tracer"

const builtinTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/** `Effect.withSpan`, skipped while the built-in tracer is the current one. */
export const withHotSpan =
  (name: string, attributes: Record<string, unknown>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.tracerWith((tracer) =>
      tracer === builtinTracer ? effect : Effect.withSpan(effect, name, { attributes, captureStackTrace: false })
    )
