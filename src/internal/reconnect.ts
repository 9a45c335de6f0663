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
import type { Cause } from "effect"
import { Duration, Effect, Exit, Schedule } from "effect"
import * as Pull from "effect/Pull"

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

export const makeReconnectDriver = (
  schedule: Schedule.Schedule<unknown, number>,
  onExhausted: () => void,
  onStepFailure: (cause: Cause.Cause<unknown>) => void
): ReconnectDriver => {
  let attempt = 0
  let exhausted = false
  let delays: Array<number> = []
  let step: ((now: number, input: number) => Pull.Pull<[unknown, Duration.Duration], never, unknown>) | undefined

  const delayFor = (n: number): number => {
    if (n === 0) return 0
    while (delays.length < n && !exhausted) {
      const next = step ??= Effect.runSync(Schedule.toStep(schedule))
      const exit = Effect.runSyncExit(next(Date.now(), delays.length + 1))
      if (Exit.isSuccess(exit)) {
        delays.push(Duration.toMillis(exit.value[1]))
      } else if (Pull.isDoneCause(exit.cause)) {
        exhausted = true
        onExhausted()
      } else {
        // Not an end but a failure (a defect, or a step that is not
        // synchronous): report it and wait a fixed delay for this attempt.
        onStepFailure(exit.cause)
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
      step = undefined
    },
    attempt: () => attempt
  }
}
