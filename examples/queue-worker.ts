/**
 * The `orders.created` worker in the `workers.orders` queue group: every
 * order goes to exactly one worker; payloads are decoded with a Schema.
 *
 * Run: npm run example -- queue-worker
 */
import { Deferred, Effect, Ref, Schema, Stream } from "effect"
import { LocalNats, TypedSubject } from "../src/index.ts"

export class OrderEvent extends Schema.Class<OrderEvent>("OrderEvent")({
  order_id: Schema.String,
  amount: Schema.Int
}) {}

export const OrderCreated = TypedSubject.make("orders.created", OrderEvent)

/** One worker: processes orders from the queue group and counts them. */
export const worker = (name: string, processed: Ref.Ref<ReadonlyArray<string>>, onProcessed: Effect.Effect<void>) =>
  Effect.gen(function*() {
    const orders = yield* TypedSubject.subscribeScoped(OrderCreated, { queue: "workers.orders" })
    return yield* orders.pipe(
      Stream.runForEach(({ value }) =>
        Effect.logDebug(`${name} processing order ${value.order_id} (${value.amount})`).pipe(
          Effect.andThen(Ref.update(processed, (all) => [...all, `${name}:${value.order_id}`])),
          Effect.andThen(onProcessed)
        )
      ),
      Effect.forkScoped
    )
  })

/** Starts `workers` workers, publishes `orders` orders, and reports how the group shared them. */
export const program = (workers = 3, orders = 300) =>
  Effect.gen(function*() {
    const processed = yield* Ref.make<ReadonlyArray<string>>([])
    const allDone = yield* Deferred.make<void>()
    const onProcessed = Effect.flatMap(Ref.get(processed), (all) =>
      all.length >= orders ? Deferred.succeed(allDone, undefined) : Effect.void)
    for (let i = 1; i <= workers; i++) {
      yield* worker(`worker-${i}`, processed, onProcessed)
    }
    for (let i = 0; i < orders; i++) {
      yield* TypedSubject.publish(OrderCreated, new OrderEvent({ order_id: `o-${i}`, amount: 100 + i }))
    }
    yield* Deferred.await(allDone).pipe(Effect.timeout("10 seconds"))
    const all = yield* Ref.get(processed)
    const perWorker: Record<string, number> = {}
    for (const entry of all) {
      const name = entry.split(":")[0] ?? "?"
      perWorker[name] = (perWorker[name] ?? 0) + 1
    }
    const distinct = new Set(all.map((entry) =>
      entry.split(":")[1]
    )).size
    yield* Effect.log(`${orders} orders, ${distinct} distinct processed, shared as ${JSON.stringify(perWorker)}`)
    return { orders, distinct, perWorker }
  })

export const main = Effect.scoped(program()).pipe(Effect.provide(LocalNats.layerConfig()))
