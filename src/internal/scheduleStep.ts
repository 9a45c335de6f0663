/**
 * Steps an Effect `Schedule` synchronously, one input at a time, outside of
 * `Effect.retry` / `Effect.repeat`: for hooks that must answer at once (the
 * nats.js reconnect delay) or that need the delay of the n-th step (the
 * processor's redelivery delay for a delivery count).
 *
 * @internal
 */
import type { Cause } from "effect"
import { Duration, Effect, Exit, Schedule } from "effect"
import * as Pull from "effect/Pull"

/** What one step gave: a delay, the end of the schedule, or a failure (a defect, or a step that is not synchronous). */
export type Step =
  | { readonly _tag: "Delay"; readonly millis: number }
  | { readonly _tag: "Done" }
  | { readonly _tag: "Failed"; readonly cause: Cause.Cause<unknown> }

const done: Step = { _tag: "Done" }

/** A fresh stepper over the schedule: each call takes the next step. */
export const stepper = <I>(schedule: Schedule.Schedule<unknown, I, unknown>): (input: I) => Step => {
  const exit = Effect.runSyncExit(Schedule.toStep(schedule))
  if (Exit.isFailure(exit)) {
    const cause = exit.cause
    return () => ({ _tag: "Failed", cause })
  }
  const step = exit.value
  let ended = false
  return (input) => {
    if (ended) return done
    const result = Effect.runSyncExit(step(Date.now(), input))
    if (Exit.isSuccess(result)) return { _tag: "Delay", millis: Duration.toMillis(result.value[1]) }
    if (Pull.isDoneCause(result.cause)) {
      ended = true
      return done
    }
    return { _tag: "Failed", cause: result.cause }
  }
}

/** The `n`-th step (1-based) of a fresh run of the schedule, every step fed `input`. */
export const nthStep = <I>(schedule: Schedule.Schedule<unknown, I, unknown>, n: number, input: I): Step => {
  const next = stepper(schedule)
  let step: Step = done
  for (let i = 0; i < n; i++) {
    step = next(input)
    if (step._tag !== "Delay") return step
  }
  return step
}
