/**
 * The `orders.created` worker in the `workers.orders` queue group: every
 * order goes to exactly one worker; payloads are decoded with a Schema.
 *
 * Run: npm run example -- queue-worker
 */
import { Deferred, Effect, Schema, Stream } from "effect"
import { LocalNats, TypedSubject } from "../src/index.ts"

export class OrderEvent extends Schema.Class<OrderEvent>("OrderEvent")({
  order_id: Schema.String,
  amount: Schema.Int
}) {}

export const OrderCreated = TypedSubject.make("orders.created", OrderEvent)

/** What the workers did: deliveries per worker, and how often each order was seen. */
export interface Tally {
  readonly perWorker: Record<string, number>
  readonly seen: Map<string, number>
}

/** One worker: processes orders from the queue group. */
export const worker = (name: string, tally: Tally, onProcessed: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const orders = yield* TypedSubject.subscribeScoped(OrderCreated, { queue: "workers.orders" })
    return yield* orders.pipe(
      Stream.runForEach(({ value }) =>
        Effect.logDebug(`${name} processing order ${value.order_id} (${value.amount})`).pipe(
          Effect.andThen(Effect.sync(() => {
            tally.perWorker[name] = (tally.perWorker[name] ?? 0) + 1
            tally.seen.set(value.order_id, (tally.seen.get(value.order_id) ?? 0) + 1)
          })),
          Effect.andThen(onProcessed)
        )
      ),
      Effect.forkScoped
    )
  })

/** Starts `workers` workers, publishes `orders` orders, and reports how the group shared them. */
export const program = (workers = 3, orders = 300) =>
  Effect.gen(function*() {
    const tally: Tally = { perWorker: {}, seen: new Map() }
    let processed = 0
    const allDone = yield* Deferred.make<void>()
    const onProcessed = Effect.suspend(() => ++processed >= orders ? Deferred.succeed(allDone, undefined) : Effect.void)
    for (let i = 1; i <= workers; i++) yield* worker(`worker-${i}`, tally, onProcessed)
    for (let i = 0; i < orders; i++) {
      yield* TypedSubject.publish(OrderCreated, new OrderEvent({ order_id: `o-${i}`, amount: 100 + i }))
    }
    yield* Deferred.await(allDone).pipe(Effect.timeout("10 seconds"))
    const duplicates = [...tally.seen.values()].filter((n) => n > 1).length
    const result = { orders, processed, distinct: tally.seen.size, duplicates, perWorker: tally.perWorker }
    yield* Effect.log(
      `${orders} orders: ${result.distinct} distinct processed, ${duplicates} duplicates, shared as ${
        JSON.stringify(tally.perWorker)
      }`
    )
    return result
  })

export const main = Effect.scoped(program()).pipe(Effect.provide(LocalNats.layerConfig()))
