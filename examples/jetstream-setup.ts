/**
 * The article's `SetupStream`: the ORDERS stream on `orders.>`, created or
 * updated from a typed `StreamConfig` (max age is a `Duration`). The second
 * call finds every requested field already set and sends no update: the
 * stream's info is unchanged.
 *
 * Run: npm run example -- jetstream-setup
 */
import { Duration, Effect, Equal, Layer } from "effect"
import type { StreamConfig } from "../src/index.ts"
import { JetStream, JetStreamManager, LocalNats } from "../src/index.ts"

/** The article's stream: 7 days of orders, on disk, one replica, limits retention, oldest discarded. */
export const OrdersStream: StreamConfig.StreamConfig = {
  name: "ORDERS",
  subjects: ["orders.>"],
  maxAge: Duration.days(7),
  storage: "file",
  replicas: 1, // 3 in a clustered deployment
  retention: "limits",
  discard: "old"
}

/** Creates the ORDERS stream, or updates it to `OrdersStream` (nothing is sent when it already matches). */
export const ensureOrdersStream = Effect.gen(function*() {
  const jsm = yield* JetStreamManager.JetStreamManager
  return yield* jsm.createOrUpdateStream(OrdersStream)
})

/** A one-line summary of a stream's configuration. */
export const describeStream = ({ config }: JetStreamManager.StreamInfo): string =>
  `${config.name} on ${config.subjects.join(", ")}: max age ${
    config.maxAge === undefined ? "none" : Duration.format(config.maxAge)
  }, ${config.storage} storage, ${config.replicas} replica(s), ${config.retention} retention, discard ${config.discard}`

/** Sets the stream up twice and reports whether the second call changed anything. */
export const program = Effect.gen(function*() {
  const first = yield* ensureOrdersStream
  yield* Effect.log(`created or updated: ${describeStream(first)}`)
  const second = yield* ensureOrdersStream
  const unchanged = Equal.equals(first.config, second.config) && first.created.getTime() === second.created.getTime()
  yield* Effect.log(
    `again: ${unchanged ? "same configuration, same creation time (no update sent)" : "the stream changed"}`
  )
  return { first, second, unchanged }
})

/** The JetStream services on a `NatsClient`. */
export const JetStreamLayer = Layer.mergeAll(JetStreamManager.JetStreamManager.layer, JetStream.JetStream.layer)

/** The examples' layer: the JetStream services on an embedded server (or `NATS_URL`). */
export const layer = JetStreamLayer.pipe(Layer.provideMerge(LocalNats.layerConfig()))

export const main = program.pipe(Effect.provide(layer))
