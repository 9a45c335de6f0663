/**
 * Production connection options and lifecycle logging (the article's
 * `NewConn`): a reconnect policy as a Schedule, events logged through Effect's
 * Logger and also available as a Stream.
 *
 * Run: npm run example -- connection
 */
import { Duration, Effect, Schedule, Stream } from "effect"
import { LocalNats, NatsClient } from "../src/index.ts"

/** The article's policy: up to 10 reconnects, 2 seconds apart. */
export const options: Omit<NatsClient.NatsClientOptions, "servers"> = {
  name: "orders-service",
  reconnectSchedule: Schedule.spaced("2 seconds").pipe(Schedule.upTo({ times: 10 })),
  connectSchedule: Schedule.exponential("200 millis").pipe(Schedule.upTo({ times: 5 })),
  drainTimeout: "5 seconds"
  // TLS: pass `connectionOptions: { tls: { caFile, certFile, keyFile } }`.
}

export const program = Effect.gen(function*() {
  const client = yield* NatsClient.NatsClient
  // Events are logged by default; here we also watch them as a Stream.
  yield* client.events.pipe(
    Stream.runForEach((event) => Effect.log(`connection event: ${event._tag}`)),
    Effect.forkScoped
  )
  const rtt = yield* client.rtt
  yield* Effect.log(`connected to ${client.connection.getServer()}, rtt ${Duration.format(rtt)}`)
  yield* client.publish("orders.created", JSON.stringify({ order_id: "o-1", amount: 4999 }))
  yield* client.flush
  yield* Effect.log("published orders.created; releasing drains the connection")
})

export const layer = LocalNats.layerConfig({ client: options })

export const main = Effect.scoped(program).pipe(Effect.provide(layer))
