/**
 * The article's `orders.created` worker rebuilt on the Processor: orders are
 * processed from a durable JetStream consumer with bounded concurrency; a
 * failing order is retried with growing delays (a Schedule), and poison or
 * hopeless orders go to a dead-letter stream with the reason in headers.
 *
 * Run: npm run example -- order-processor
 */
import { Deferred, Duration, Effect, Schedule, Schema } from "effect"
import { Consumer, ConsumerConfig, JetStream, JetStreamManager, Processor } from "../src/index.ts"
import * as JsSetup from "./jetstream-setup.ts"

export class OrderEvent extends Schema.Class<OrderEvent>("OrderEvent")({
  order_id: Schema.String,
  amount: Schema.Int
}) {}

class PaymentDeclined extends Schema.TaggedError<PaymentDeclined>()("PaymentDeclined", {
  order_id: Schema.String
}) {}

class GatewayBusy extends Schema.TaggedError<GatewayBusy>()("GatewayBusy", { order_id: Schema.String }) {}

const encoder = new TextEncoder()

/** What happened to the orders. */
export interface Outcome {
  readonly published: number
  readonly processed: number
  readonly retried: ReadonlyArray<string>
  readonly deadLettered: ReadonlyArray<{ readonly reason: string; readonly error: string; readonly sequence: string }>
}

/**
 * Publishes `orders` good orders (a few of them fail once, one is always
 * declined) plus one poison payload, and runs the processor until every
 * order is processed or dead-lettered.
 */
export const program = (orders = 20) =>
  Effect.gen(function*() {
    const jsm = yield* JetStreamManager.JetStreamManager
    const js = yield* JetStream.JetStream
    yield* JsSetup.ensureOrdersStream
    yield* jsm.createOrUpdateStream({ name: "ORDERS_DLQ", subjects: ["dlq.orders.>"] })
    yield* jsm.createOrUpdateConsumer("ORDERS", {
      durable: "order-worker",
      filterSubject: "orders.created",
      deliverPolicy: ConsumerConfig.deliver.new,
      ackPolicy: "explicit",
      maxDeliver: 5,
      ackWait: Duration.seconds(30)
    })
    const consumer = yield* Consumer.durable({ stream: "ORDERS", durable: "order-worker" })
    const dlqBefore = (yield* jsm.streamInfo("ORDERS_DLQ")).state.lastSeq

    const run = `${Date.now().toString(36)}`
    const retried: Array<string> = []
    let processed = 0
    const goodOrders = orders - 1 // one is always declined
    const allProcessed = yield* Deferred.make<void>()

    yield* Processor.make({
      consumer,
      codec: OrderEvent,
      concurrency: 4,
      // delivery 2 after ~100 ms, delivery 3 after ~200 ms, then dead-letter
      retry: Schedule.exponential("100 millis").pipe(Schedule.upTo({ times: 2 })),
      deadLetter: { subject: "dlq.orders.created" },
      handler: (order, envelope) =>
        Effect.gen(function*() {
          const n = Number(order.order_id.split("-")[2])
          if (n === 13) return yield* new PaymentDeclined({ order_id: order.order_id })
          if (n % 5 === 0 && envelope.deliveryCount === 1) {
            retried.push(order.order_id)
            return yield* new GatewayBusy({ order_id: order.order_id })
          }
          if (++processed >= goodOrders) yield* Deferred.succeed(allProcessed, undefined)
        })
    })

    for (let i = 0; i < orders; i++) {
      yield* js.publish(
        "orders.created",
        encoder.encode(JSON.stringify({ order_id: `o-${run}-${i}`, amount: 100 + i }))
      )
    }
    yield* js.publish("orders.created", encoder.encode("{\"order_id\": 42, \"amount\": \"lots\""))

    yield* Deferred.await(allProcessed).pipe(Effect.timeout("20 seconds"))
    // the declined order and the poison payload end in the dead-letter stream
    yield* jsm.streamInfo("ORDERS_DLQ").pipe(
      Effect.repeat({ until: (info) => info.state.lastSeq >= dlqBefore + 2, schedule: Schedule.spaced("50 millis") }),
      Effect.timeout("20 seconds")
    )
    const deadLettered = yield* Effect.forEach([dlqBefore + 1, dlqBefore + 2], (seq) =>
      jsm.getMessage("ORDERS_DLQ", { seq }).pipe(Effect.map((m) =>
        m._tag === "Some"
          ? {
            reason: m.value.headers?.get(Processor.DeadLetterHeaders.reason) ?? "",
            error: m.value.headers?.get(Processor.DeadLetterHeaders.error) ?? "",
            sequence: m.value.headers?.get(Processor.DeadLetterHeaders.sequence) ?? ""
          }
          : { reason: "missing", error: "", sequence: "" }
      )))
    const outcome: Outcome = { published: orders + 1, processed, retried, deadLettered }
    yield* Effect.log(
      `${outcome.published} published: ${processed} processed, retried once: ${retried.length}; dead-lettered: ${
        deadLettered.map((d) =>
          `seq ${d.sequence} (${d.reason}: ${d.error})`
        ).join("; ")
      }`
    )
    return outcome
  })

export const main = Effect.scoped(program()).pipe(Effect.provide(JsSetup.layer))
