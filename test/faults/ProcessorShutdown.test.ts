/**
 * A Processor shut down under load while another processor shares its
 * consumer. On nats-server 2.9 a nak sent while the server still holds pull
 * requests of a closed subscription rolls the consumer's delivery pointer
 * back: a message in progress is handed out again (twice at once) and the
 * naked one waits out its ack wait. The shutdown must leave neither.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Schedule, Schema, Scope, Stream } from "effect"
import { Consumer, JetStream, JetStreamManager, LocalNats, Processor } from "../../src/index.ts"

const Order = Schema.Struct({ id: Schema.Int })
const encoder = new TextEncoder()

const Env = Layer.mergeAll(JetStream.JetStream.layer, JetStreamManager.JetStreamManager.layer).pipe(
  Layer.provideMerge(LocalNats.layer())
)

describe("Processor shutdown under load", { timeout: 90_000 }, () => {
  it.live("no message is handed out twice at once, none waits out its ack wait, nothing is lost", () =>
    Effect.gen(function*() {
      const jsm = yield* JetStreamManager.JetStreamManager
      const js = yield* JetStream.JetStream
      const total = 3000
      const ackWait = Duration.seconds(20)
      yield* jsm.createOrUpdateStream({ name: "SHUT", subjects: ["shut.>"] })
      yield* jsm.createOrUpdateConsumer("SHUT", { durable: "w", ackWait, maxAckPending: 400 })
      yield* Stream.runDrain(js.publishAll(Array.from({ length: total }, (_, id) => ({
        subject: "shut.o",
        payload: encoder.encode(JSON.stringify({ id }))
      }))))

      const inProgress = new Set<number>()
      const done = new Set<number>()
      let concurrentTwice = 0
      const handler = (_order: typeof Order.Type, envelope: { readonly streamSequence: number }) =>
        Effect.gen(function*() {
          const seq = envelope.streamSequence
          if (inProgress.has(seq)) concurrentTwice++
          inProgress.add(seq)
          yield* Effect.sleep("10 millis")
          inProgress.delete(seq)
          done.add(seq)
        })
      const processor = (scope: Scope.Scope) =>
        Effect.gen(function*() {
          const consumer = yield* Consumer.durable({ stream: "SHUT", durable: "w" })
          return yield* Processor.make({ consumer, codec: Order, handler, concurrency: 8, prefetch: 200 })
        }).pipe(Scope.provide(scope))

      const started = Date.now()
      const first = yield* Scope.make()
      const second = yield* Scope.make()
      yield* processor(first)
      yield* processor(second)
      // the first shuts down with hundreds of messages held, the second goes on; a third comes and goes
      yield* Effect.sleep("400 millis")
      yield* Scope.close(first, Exit.void)
      const third = yield* Scope.make()
      yield* processor(third)
      yield* Effect.sleep("400 millis")
      yield* Scope.close(third, Exit.void)

      yield* Effect.suspend(() => done.size === total ? Effect.void : Effect.fail("not yet")).pipe(
        Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 400 })
      )
      const elapsed = Date.now() - started
      yield* Scope.close(second, Exit.void)
      assert.strictEqual(concurrentTwice, 0, "a message handed out while still in progress")
      assert.strictEqual(done.size, total)
      // a naked message stranded until its ack wait would keep the run going for 20 s
      assert.isBelow(elapsed, Duration.toMillis(ackWait), `all done in ${elapsed} ms`)
    }).pipe(Effect.provide(Env)))
})
