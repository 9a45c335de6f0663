/**
 * Steps an Effect `Schedule` synchronously, one input at a time, outside of
 * `Effect.retry` / `Effect.repeat`: for hooks that must answer at once (the
 * nats.js reconnect delay) or that need the delay of the n-th step (the
 * processor's redelivery delay for a delivery count).
 *
 * Steps run with the services of the caller's context: its `Clock` gives the
 * time of each step (so a `TestClock` drives time-based schedules) and its
 * `Random` the jitter.
 *
 * @internal
 */
import type { Cause } from "effect"
import { Clock, Context, Duration, Effect, Exit, Schedule } from "effect"
import * as Pull from "effect/Pull"

/** What one step gave: a delay, the end of the schedule, or a failure (a defect, or a step that is not synchronous). */
export type Step =
  | { readonly _tag: "Delay"; readonly millis: number }
  | { readonly _tag: "Done" }
  | { readonly _tag: "Failed"; readonly cause: Cause.Cause<unknown> }

const done: Step = { _tag: "Done" }

/** A fresh stepper over the schedule, run with `context`: each call takes the next step. */
export const stepper = <I>(
  schedule: Schedule.Schedule<unknown, I, unknown>,
  context: Context.Context<never>
): (input: I) => Step => {
  const run = Effect.runSyncExitWith(context)
  const clock = Context.get(context, Clock.Clock)
  const exit = run(Schedule.toStep(schedule))
  if (Exit.isFailure(exit)) {
    const cause = exit.cause
    return () => ({ _tag: "Failed", cause })
  }
  const step = exit.value
  let ended = false
  return (input) => {
    if (ended) return done
    const result = run(step(clock.currentTimeMillisUnsafe(), input))
    if (Exit.isSuccess(result)) return { _tag: "Delay", millis: Duration.toMillis(result.value[1]) }
    if (Pull.isDoneCause(result.cause)) {
      ended = true
      return done
    }
    return { _tag: "Failed", cause: result.cause }
  }
}

/** The `n`-th step (1-based) of a fresh run of the schedule, every step fed `input`. */
export const nthStep = <I>(
  schedule: Schedule.Schedule<unknown, I, unknown>,
  n: number,
  input: I,
  context: Context.Context<never>
): Step => {
  const next = stepper(schedule, context)
  let step: Step = done
  for (let i = 0; i < n; i++) {
    step = next(input)
    if (step._tag !== "Delay") return step
  }
  return step
}
