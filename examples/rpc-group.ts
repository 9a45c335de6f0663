/**
 * An Effect `RpcGroup` served over NATS by three instances (each on its own
 * connection, as three processes would be) and called by a client that
 * knows only the subject. The queue group spreads the calls; a streaming
 * call is read with backpressure; a typed error crosses as itself; then one
 * instance stops gracefully and the others take its share.
 *
 * Run: npm run example -- rpc-group
 */
import { Effect, Exit, Layer, Schema, Scope, Stream } from "effect"
import * as Rpc from "effect/rpc/Rpc"
import * as RpcClient from "effect/rpc/RpcClient"
import * as RpcGroup from "effect/rpc/RpcGroup"
import * as RpcSerialization from "effect/rpc/RpcSerialization"
import { LocalNats, NatsClient, NatsRpc } from "../src/index.ts"

export class Order extends Schema.Class<Order>("Order")({ id: Schema.String, cents: Schema.Int }) {}

export class OrderNotFound extends Schema.TaggedError<OrderNotFound>()("OrderNotFound", { id: Schema.String }) {}

export const Orders = RpcGroup.make(
  Rpc.make("GetOrder", { payload: { id: Schema.String }, success: Order, error: OrderNotFound }),
  Rpc.make("OrderHistory", { payload: { count: Schema.Int }, success: Order, stream: true }),
  Rpc.make("WhoServes", { success: Schema.String })
)

export const subject = "shop.orders.rpc"

/** The handlers of the instance called `name`. */
export const handlers = (name: string) =>
  Orders.toLayer({
    GetOrder: ({ id }) =>
      id.startsWith("o-") ? Effect.succeed(new Order({ id, cents: 4999 })) : Effect.fail(new OrderNotFound({ id })),
    OrderHistory: ({ count }) =>
      Stream.range(1, count).pipe(Stream.map((i) => new Order({ id: `o-${i}`, cents: i * 100 }))),
    WhoServes: () => Effect.succeed(name)
  })

/** An instance on a connection of its own, until `scope` closes (gracefully). */
export const instance = (name: string, scope: Scope.Scope) =>
  Effect.gen(function*() {
    // the application's server (an embedded one, or NATS_URL's)
    const server = yield* NatsClient.NatsClient.use((app) => app.server)
    const nats = yield* NatsClient.make({ servers: `nats://${server?.address}`, name, logEvents: false }).pipe(
      Scope.provide(scope)
    )
    yield* Layer.buildWithScope(
      NatsRpc.layerServer(Orders, { subject }).pipe(
        Layer.provide([handlers(name), RpcSerialization.layerJson, Layer.succeed(NatsClient.NatsClient, nats)])
      ),
      scope
    )
  })

/** The client's protocol (on the application's `NatsClient`). */
export const ClientProtocol = NatsRpc.layerProtocolClient({ subject }).pipe(Layer.provide(RpcSerialization.layerJson))

export const program = Effect.gen(function*() {
  const scopes = yield* Effect.forEach(["east", "west", "north"], (name) =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      yield* instance(name, scope)
      return { name, scope }
    }))
  const client = yield* RpcClient.make(Orders)

  const order = yield* client.GetOrder({ id: "o-7" })
  const missing = yield* client.GetOrder({ id: "x-1" }).pipe(Effect.flip, Effect.map((e) => e._tag))
  const history = Array.from(yield* Stream.runCollect(client.OrderHistory({ count: 50 })))
  const served = yield* Effect.forEach(Array.from({ length: 30 }), () => client.WhoServes(), { concurrency: 4 })
  const spread: Record<string, number> = {}
  for (const name of served) spread[name] = (spread[name] ?? 0) + 1
  yield* Effect.log(`GetOrder -> ${order.id} at ${order.cents}; unknown order -> ${missing}`)
  yield* Effect.log(`OrderHistory streamed ${history.length} orders; 30 calls served by ${JSON.stringify(spread)}`)

  // one instance stops (gracefully): the others serve every later call
  const [stopped, ...rest] = scopes
  if (stopped !== undefined) yield* Scope.close(stopped.scope, Exit.void)
  const after = yield* Effect.forEach(Array.from({ length: 10 }), () => client.WhoServes())
  yield* Effect.log(`after ${stopped?.name} stopped, 10 calls served by ${[...new Set(after)].join(", ")}`)
  yield* Effect.forEach(rest, (s) => Scope.close(s.scope, Exit.void), { discard: true })
  return { order, missing, streamed: history.length, spread, after }
})

export const main = Effect.scoped(program).pipe(Effect.provide(ClientProtocol), Effect.provide(LocalNats.layerConfig()))
