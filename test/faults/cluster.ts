/**
 * What the fault tests share: a client pinned to one node of a cluster (the
 * others listed for its reconnects), the services on it, and which node
 * leads a stream or a consumer.
 */
import { Effect, Layer, Schedule } from "effect"
import { JetStream, JetStreamManager, NatsClient, NatsServer } from "../../src/index.ts"

/** A client on node `on` first (the others listed for its reconnects, in order). */
export const clientOn = (on: number) =>
  Layer.effect(
    NatsClient.NatsClient,
    NatsServer.NatsServer.use((server) =>
      NatsClient.make({
        servers: [...server.nodes.filter((n) => n.index === on), ...server.nodes.filter((n) => n.index !== on)]
          .map((n) => n.url),
        connectionOptions: { noRandomize: true },
        reconnectSchedule: Schedule.spaced("100 millis"),
        logEvents: false
      })
    )
  )

/** `JetStream` and `JetStreamManager` on a client on node `on`. */
export const servicesOn = (on: number) =>
  Layer.mergeAll(JetStream.JetStream.layer, JetStreamManager.JetStreamManager.layer).pipe(
    Layer.provideMerge(clientOn(on))
  )

/** The index of the node that leads the stream (or its consumer), once there is one. */
export const leaderOf = (stream: string, consumer?: string) =>
  Effect.gen(function*() {
    const server = yield* NatsServer.NatsServer
    const jsm = yield* JetStreamManager.JetStreamManager
    const info = consumer === undefined ? yield* jsm.streamInfo(stream) : yield* jsm.consumerInfo(stream, consumer)
    const index = server.nodes.findIndex((n) => n.name === info.cluster?.leader)
    if (index < 0) return yield* Effect.fail("no leader yet")
    return index
  }).pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 100 }))
