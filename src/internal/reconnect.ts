/**
 * Drives nats.js reconnect delays from an Effect `Schedule`.
 *
 * nats.js asks `reconnectDelayHandler()` for the wait before each dial, and
 * may ask more than once for the same attempt; `reconnectToServer` runs once
 * right before each dial. We count attempts in the latter and memoise the
 * schedule's delay per attempt, so a schedule step is taken exactly once per
 * attempt. The first attempt after a disconnect dials at once; attempt `n + 1`
 * waits for the schedule's `n`-th delay. When the schedule ends, `onExhausted`
 * runs (the client closes the connection). The schedule must step
 * synchronously (delays, not effects that sleep).
 *
 * Each dial is one attempt: with several servers, a full rotation over them
 * takes several steps of the schedule.
 *
 * @internal
 */
import type { Cause, Context, Schedule } from "effect"
import type { Step } from "./scheduleStep.ts"
import { stepper } from "./scheduleStep.ts"

/** Wait returned once the schedule has ended, while the connection closes. */
const PARKED_MILLIS = 60_000

/** Wait used for an attempt whose schedule step failed (rather than ended). */
const FALLBACK_MILLIS = 2_000

export interface ReconnectDriver {
  readonly reconnectDelayHandler: () => number
  readonly onDial: () => void
  readonly reset: () => void
  readonly attempt: () => number
}

export const makeReconnectDriver = (options: {
  readonly schedule: Schedule.Schedule<unknown, number>
  /** The services the schedule steps with (its Clock, its Random). */
  readonly context: Context.Context<never>
  readonly onExhausted: () => void
  readonly onStepFailure: (cause: Cause.Cause<unknown>) => void
}): ReconnectDriver => {
  const { context, onExhausted, onStepFailure, schedule } = options
  let attempt = 0
  let exhausted = false
  let delays: Array<number> = []
  let next: ((input: number) => Step) | undefined

  const delayFor = (n: number): number => {
    if (n === 0) return 0
    while (delays.length < n && !exhausted) {
      next ??= stepper(schedule, context)
      const step = next(delays.length + 1)
      if (step._tag === "Delay") {
        delays.push(step.millis)
      } else if (step._tag === "Done") {
        exhausted = true
        onExhausted()
      } else {
        // A failure, not an end: report it and wait a fixed delay for this attempt.
        onStepFailure(step.cause)
        delays.push(FALLBACK_MILLIS)
      }
    }
    return exhausted ? PARKED_MILLIS : delays[n - 1] ?? 0
  }

  return {
    reconnectDelayHandler: () => delayFor(attempt),
    onDial: () => {
      attempt++
    },
    reset: () => {
      attempt = 0
      exhausted = false
      delays = []
      next = undefined
    },
    attempt: () => attempt
  }
}
