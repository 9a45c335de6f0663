/**
 * The article's `StartPushConsumer`: the durable `order-processor` on
 * `orders.created` (explicit ack, at most 5 deliveries, 30 s ack wait),
 * created or updated by `Consumer.fromConfig` as a **push** consumer (the server
 * delivers to an inbox, with flow control and idle heartbeats; nats-server
 * 2.9 supports it). Each order is processed: acked on success, nak'ed on a
 * processing error so that the server redelivers it at once. One order fails
 * on its first delivery to show the redelivery (`deliveryCount` 2).
 *
 * Run: npm run example -- jetstream-push-consumer
 */
import { Duration, Effect, Option, Schedule, Schema, Stream } from "effect"
import type { ConsumerConfig } from "../src/index.ts"
import { Consumer, JetStream, JetStreamManager } from "../src/index.ts"
import { ensureOrdersStream, layer } from "./jetstream-setup.ts"
import { OrderCreated, OrderEvent } from "./queue-worker.ts"

/** The article's consumer settings. */
export const OrderProcessor: ConsumerConfig.ConsumerConfig = {
  durable: "order-processor",
  filterSubject: "orders.created",
  ackPolicy: "explicit",
  maxDeliver: 5, // give up on a message after 5 deliveries
  ackWait: Duration.seconds(30) // redelivered when not acked within 30 s
}

export class ProcessingError extends Schema.TaggedError<ProcessingError>()("ProcessingError", {
  order_id: Schema.String,
  message: Schema.String
}) {}

/** What happened to one delivery. */
export interface Delivery {
  readonly order_id: string
  readonly deliveryCount: number
  readonly outcome: "acked" | "nak"
}

/**
 * Publishes `count` orders on `orders.created` and processes them with the
 * push consumer until each is acked; the `failOnce`-th order fails on its
 * first delivery. Orders left in the stream by others are processed too, and
 * counted apart (`others`).
 */
export const program = (count = 10, failOnce = 3) =>
  Effect.gen(function*() {
    yield* ensureOrdersStream
    const jsm = yield* JetStreamManager.JetStreamManager
    const consumer = yield* Consumer.fromConfig({ stream: "ORDERS", config: OrderProcessor, push: {} })
    // order ids unique to this run: the durable consumer may see orders published before
    const run = Date.now().toString(36).slice(-4)
    const ids = Array.from({ length: count }, (_, i) => `${run}-${i + 1}`)
    const ours = new Set(ids)

    /** The business logic: the order `failOnce` fails the first time it is seen. */
    const processOrder = (order: OrderEvent, deliveryCount: number) =>
      order.order_id === ids[failOnce - 1] && deliveryCount === 1
        ? Effect.fail(new ProcessingError({ order_id: order.order_id, message: "payment service unavailable" }))
        : Effect.logDebug(`processed ${order.order_id} (${order.amount})`)

    for (const [i, order_id] of ids.entries()) {
      yield* JetStream.publishTyped(OrderCreated, new OrderEvent({ order_id, amount: 100 * (i + 1) }), {
        msgId: order_id
      })
    }

    let acked = 0
    const all = yield* consumer.consume({ codec: OrderEvent }).pipe(
      Stream.mapEffect((m) =>
        processOrder(m.value, m.deliveryCount).pipe(
          Effect.andThen(m.ack),
          Effect.as<Delivery>({ order_id: m.value.order_id, deliveryCount: m.deliveryCount, outcome: "acked" }),
          Effect.catchTag("ProcessingError", (error) =>
            Effect.logWarning(`order ${error.order_id} failed (${error.message}): nak, redeliver`).pipe(
              Effect.andThen(m.nak()),
              Effect.as<Delivery>({ order_id: m.value.order_id, deliveryCount: m.deliveryCount, outcome: "nak" })
            ))
        )
      ),
      // until every order of this run is acked
      Stream.takeUntil((d) => d.outcome === "acked" && ours.has(d.order_id) && ++acked >= count),
      Stream.runCollect,
      Effect.timeout("20 seconds")
    )

    const deliveries = all.filter((d) => ours.has(d.order_id))
    const others = all.length - deliveries.length
    const redelivered = deliveries.filter((d) => d.deliveryCount > 1)
    // `ack` is fire-and-forget (as in the article; `ackAck` would wait for the server's
    // confirmation): the consumer's info may lag the last acks by a moment.
    const info = yield* jsm.consumerInfo("ORDERS", "order-processor").pipe(
      Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (i) => i.numAckPending === 0 }),
      Effect.timeoutOption("2 seconds"),
      Effect.flatMap(Option.match({
        onNone: () => jsm.consumerInfo("ORDERS", "order-processor"),
        onSome: Effect.succeed
      }))
    )
    yield* Effect.log(
      `${deliveries.filter((d) => d.outcome === "acked").length} orders acked in ${deliveries.length} deliveries; ${
        redelivered.map((d) => `${d.order_id} redelivered (deliveryCount ${d.deliveryCount}) and acked`).join(", ")
      }${
        others > 0 ? ` (and ${others} earlier orders)` : ""
      }; consumer ${info.name}: ${info.numAckPending} awaiting ack, ${info.numPending} pending, push bound ${info.pushBound}`
    )
    return { count, push: consumer.push, deliveries, redelivered, others, info }
  })

export const main = Effect.scoped(program()).pipe(Effect.provide(layer))
