/**
 * The article's production connection (`NewConn`): TLS 1.2 or newer, up to 10
 * reconnects 2 seconds apart, and the connection's lifecycle logged —
 * disconnected as a warning, reconnected as info, closed for good as an error
 * (a release, which drains, as info).
 *
 * It runs on an embedded TLS server (a throwaway CA the client trusts), or on
 * `NATS_URL` when it is set (with `NATS_TLS_CA` and the other `NatsClient.config`
 * variables). A forced reconnect shows the lifecycle.
 *
 * Run: npm run example -- connection
 */
import { Deferred, Duration, Effect, Schedule, Stream } from "effect"
import type { ConnectionEvent } from "../src/index.ts"
import { LocalNats, NatsClient } from "../src/index.ts"

/** The article's handlers: `DisconnectErrHandler`, `ReconnectHandler`, `ClosedHandler`. */
export const logLifecycle = (event: ConnectionEvent.ConnectionEvent): Effect.Effect<void> => {
  switch (event._tag) {
    case "Disconnected":
      return Effect.logWarning("nats disconnected").pipe(Effect.annotateLogs("server", event.server))
    case "Reconnected":
      return Effect.logInfo("nats reconnected").pipe(Effect.annotateLogs("url", event.server))
    case "Closed":
      // a message says why it closed when the layer did not close it (released: none)
      return event.message === undefined
        ? Effect.logInfo("nats connection closed")
        : Effect.logError("nats connection closed permanently").pipe(Effect.annotateLogs("reason", event.message))
    default:
      return Effect.logDebug(`nats ${event._tag}`)
  }
}

/** The article's policy: TLS 1.2+, up to 10 reconnects 2 seconds apart. */
export const options: Omit<NatsClient.NatsClientOptions, "servers"> = {
  name: "orders-service",
  tls: { minVersion: "TLSv1.2" },
  reconnectSchedule: Schedule.spaced("2 seconds").pipe(Schedule.upTo({ times: 10 })),
  connectSchedule: Schedule.exponential("200 millis").pipe(Schedule.upTo({ times: 5 })),
  drainTimeout: "5 seconds",
  // the lifecycle logged at the article's levels, for the connection's whole life
  logEvents: false,
  onEvent: logLifecycle
}

export const program = Effect.gen(function*() {
  const client = yield* NatsClient.NatsClient
  const reconnected = yield* Deferred.make<void>()
  // a reader of the events Stream, next to the handler: it sees the same events
  yield* (yield* client.eventsScoped).pipe(
    Stream.takeUntil((event) => event._tag === "Reconnected"),
    Stream.runDrain,
    Effect.andThen(Deferred.succeed(reconnected, undefined)),
    Effect.forkScoped
  )
  const rtt = yield* client.rtt
  const tls = client.connection.info?.tls_required === true
  yield* Effect.log(`connected to ${client.connection.getServer()} (TLS: ${tls}), rtt ${Duration.format(rtt)}`)
  yield* client.publish("orders.created", JSON.stringify({ order_id: "o-1", amount: 4999 }))
  yield* client.flush

  // a dropped connection: logged, then redialled by the reconnect schedule
  yield* Effect.promise(() => client.connection.reconnect())
  yield* Deferred.await(reconnected)
  yield* client.publish("orders.created", JSON.stringify({ order_id: "o-2", amount: 1999 }))
  yield* client.flush
  yield* Effect.log("published orders.created twice; releasing drains the connection")
  return { tls }
})

export const layer = LocalNats.layerConfig({ server: { tls: {} }, client: options })

export const main = Effect.scoped(program).pipe(Effect.provide(layer))
