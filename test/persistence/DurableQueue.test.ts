/**
 * `effect/workflow`'s DurableQueue (a workflow hands work to a worker through
 * a PersistedQueue and waits for its result) on Effect's memory store and on
 * NATS: the cases of Effect's own DurableQueue tests.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Option, Schema } from "effect"
import { PersistedQueue } from "effect/persistence"
import { TestClock } from "effect/testing"
import { DurableQueue, Workflow, WorkflowEngine } from "effect/workflow"
import * as NatsPersistedQueue from "../../src/layers/NatsPersistedQueue.ts"
import { liveNats } from "../support/liveNats.ts"

const pollUntilComplete = <A, E, R>(poll: Effect.Effect<Option.Option<Workflow.Result<A, E>>, never, R>) =>
  Effect.gen(function*() {
    let polled = yield* poll
    for (let i = 0; i < 1000 && (Option.isNone(polled) || polled.value._tag !== "Complete"); i++) {
      yield* Effect.yieldNow
      yield* Effect.sleep("10 millis").pipe(TestClock.withLive)
      polled = yield* poll
    }
    return polled
  })

const Payload = { id: Schema.String, value: Schema.Number }

const cases = (name: string, store: Layer.Layer<PersistedQueue.PersistedQueueStore, unknown>) => {
  const queues = PersistedQueue.layer.pipe(Layer.provideMerge(store))

  const Increment = DurableQueue.make({
    name: `${name}/Increment`,
    payload: Payload,
    success: Schema.Number,
    error: Schema.String,
    idempotencyKey: ({ id }) => id
  })
  const IncrementFlow = Workflow.make(`${name}/IncrementFlow`, {
    payload: Payload,
    success: Schema.Number,
    error: Schema.String,
    idempotencyKey: ({ id }) => id
  })
  const SuccessLayer = Layer.mergeAll(
    IncrementFlow.toLayer(({ id, value }) => DurableQueue.process(Increment, { id, value })),
    DurableQueue.worker(Increment, ({ value }) => Effect.succeed(value + 1))
  ).pipe(Layer.provideMerge(WorkflowEngine.layerMemory), Layer.provideMerge(queues))

  it.effect(`${name}: processes queued items and resumes the workflow`, () =>
    Effect.gen(function*() {
      const executionId = yield* IncrementFlow.execute({ id: "success", value: 41 }, { discard: true })
      const polled = yield* pollUntilComplete(IncrementFlow.poll(executionId))
      assert(Option.isSome(polled) && polled.value._tag === "Complete" && Exit.isSuccess(polled.value.exit))
      assert.strictEqual(polled.value.exit.value, 42)
    }).pipe(Effect.provide(SuccessLayer)), 30_000)

  const Failing = DurableQueue.make({
    name: `${name}/Failing`,
    payload: { id: Schema.String },
    success: Schema.Void,
    error: Schema.String,
    idempotencyKey: ({ id }) => id
  })
  const FailingFlow = Workflow.make(`${name}/FailingFlow`, {
    payload: { id: Schema.String },
    success: Schema.Void,
    error: Schema.String,
    idempotencyKey: ({ id }) => id
  })
  const FailureLayer = Layer.mergeAll(
    FailingFlow.toLayer(({ id }) => DurableQueue.process(Failing, { id })),
    DurableQueue.worker(Failing, () => Effect.fail("boom"))
  ).pipe(Layer.provideMerge(WorkflowEngine.layerMemory), Layer.provideMerge(queues))

  it.effect(`${name}: propagates worker failures to the workflow`, () =>
    Effect.gen(function*() {
      const executionId = yield* FailingFlow.execute({ id: "failure" }, { discard: true })
      const polled = yield* pollUntilComplete(FailingFlow.poll(executionId))
      assert(Option.isSome(polled) && polled.value._tag === "Complete" && Exit.isFailure(polled.value.exit))
      const failure = polled.value.exit.cause.reasons.find(Cause.isFailReason)
      assert.strictEqual(failure?.error, "boom")
    }).pipe(Effect.provide(FailureLayer)), 30_000)
}

describe("DurableQueue", () => {
  cases("memory", PersistedQueue.layerStoreMemory)
  // the server and its client keep real time while the test moves a TestClock
  cases("nats", NatsPersistedQueue.layerStore({ storage: "memory" }).pipe(Layer.provide(liveNats())))
})
