import { assert, describe, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { nthStep, stepper } from "../../src/internal/scheduleStep.ts"

// The schedule stepper drives the reconnect delays and the Processor's
// redelivery delays outside of Effect.retry: it must take its time from the
// caller's Clock, so that a TestClock drives time-based schedules.
describe("scheduleStep", () => {
  it.effect("a stepped schedule reads the time of the caller's Clock (TestClock)", () =>
    Effect.gen(function*() {
      const next = stepper(
        Schedule.spaced("100 millis").pipe(Schedule.upTo({ duration: "1 second" })),
        yield* Effect.context()
      )
      assert.deepStrictEqual(next(undefined), { _tag: "Delay", millis: 100 })
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(next(undefined), { _tag: "Done" })
    }))

  it.effect("nthStep gives the n-th delay, and Done once the schedule has ended", () =>
    Effect.gen(function*() {
      const context = yield* Effect.context()
      const schedule = Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 3 }))
      assert.deepStrictEqual(nthStep(schedule, 1, undefined, context), { _tag: "Delay", millis: 100 })
      assert.deepStrictEqual(nthStep(schedule, 3, undefined, context), { _tag: "Delay", millis: 400 })
      assert.deepStrictEqual(nthStep(schedule, 4, undefined, context), { _tag: "Done" })
    }))
})
