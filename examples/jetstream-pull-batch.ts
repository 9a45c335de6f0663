/**
 * The article's `RunPullBatch`: the durable pull consumer
 * `order-batch-processor` on ORDERS (explicit ack), created or updated from a
 * typed `ConsumerConfig`; one batch is a fetch of at most 50 messages that
 * waits at most 2 s, each message acked.
 *
 * The program publishes some orders, then runs batches until the consumer's
 * backlog is drained: a full batch returns as soon as its 50 messages are
 * there; the last, partial one returns when its 2 s are up.
 *
 * Run: npm run example -- jetstream-pull-batch
 */
import { Duration, Effect, Stream } from "effect"
import type { ConsumerConfig } from "../src/index.ts"
import { Consumer, JetStream, JetStreamManager } from "../src/index.ts"
import { ensureOrdersStream, layer } from "./jetstream-setup.ts"
import { OrderCreated, OrderEvent } from "./queue-worker.ts"

export const OrderBatchProcessor: ConsumerConfig.ConsumerConfig = {
  durable: "order-batch-processor",
  ackPolicy: "explicit"
}

/** What one batch did. */
export interface Batch {
  /** Messages fetched, each acked. */
  readonly size: number
  readonly millis: number
}

/** The article's `RunPullBatch`: fetch at most `batch` messages within `maxWait`, ack each. */
export const runPullBatch = (consumer: Consumer.ConsumerShape, batch = 50, maxWait: Duration.Input = "2 seconds") =>
  consumer.fetch({ batch, maxWait }).pipe(
    Stream.mapEffect((m) =>
      Effect.logDebug(`batch processing ${m.subject} #${m.streamSequence}`).pipe(Effect.andThen(m.ack))
    ),
    Stream.runCount,
    Effect.timed,
    Effect.map(([elapsed, size]): Batch => ({ size, millis: Duration.toMillis(elapsed) }))
  )

/** Publishes `orders` orders, then runs batches until the consumer has nothing pending. */
export const program = (orders = 120, batch = 50, maxWait: Duration.Input = "2 seconds") =>
  Effect.gen(function*() {
    yield* ensureOrdersStream
    const jsm = yield* JetStreamManager.JetStreamManager
    const js = yield* JetStream.JetStream
    yield* jsm.createOrUpdateConsumer("ORDERS", OrderBatchProcessor)
    const consumer = yield* Consumer.durable({ stream: "ORDERS", durable: "order-batch-processor" })

    const run = Date.now().toString(36)
    const messages = yield* Effect.forEach(
      Array.from({ length: orders }, (_, i) => new OrderEvent({ order_id: `${run}-b${i}`, amount: 100 + i })),
      (order) => Effect.fromResult(JetStream.typedMessage(OrderCreated, order))
    )
    yield* Stream.runDrain(js.publishAll(messages))

    const pendingBefore = (yield* jsm.consumerInfo("ORDERS", "order-batch-processor")).numPending
    const batches: Array<Batch> = []
    while (true) {
      const done = yield* runPullBatch(consumer, batch, maxWait)
      batches.push(done)
      yield* Effect.logDebug(`batch of ${done.size} in ${done.millis.toFixed(0)} ms`)
      if (done.size < batch) break
    }
    const info = yield* jsm.consumerInfo("ORDERS", "order-batch-processor")
    const acked = batches.reduce((n, b) => n + b.size, 0)
    const full = batches.filter((b) => b.size === batch)
    const last = batches[batches.length - 1]
    const millis = full.map((b) => b.millis)
    yield* Effect.log(
      `${pendingBefore} pending; ${full.length} full batch(es) of ${batch}${
        full.length === 0
          ? ""
          : ` (${(millis.reduce((t, m) => t + m, 0) / full.length).toFixed(1)} ms on average, at most ${
            Math.max(...millis).toFixed(0)
          } ms)`
      }, then a batch of ${last?.size ?? 0} after ${
        (last?.millis ?? 0).toFixed(0)
      } ms (max wait); ${acked} acked; now ${info.numPending} pending, ${info.numAckPending} awaiting ack`
    )
    return { pendingBefore, batches, acked, info }
  })

export const main = Effect.scoped(program()).pipe(Effect.provide(layer))
