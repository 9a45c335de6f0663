/**
 * The conformance suite over JetStream: a stream per topic, a durable pull consumer per group read with
 * `consume` (ack / nak, ack wait 1 s), on a single node and on a 3-node cluster (streams of 3 replicas).
 */
import { Layer } from "effect"
import { JetStreamManager, LocalNats } from "../../src/index.ts"
import type { Features } from "../../src/testing/Conformance.ts"
import { suite } from "../../src/testing/Conformance.ts"
import * as Adapters from "./adapters.ts"

const features = (topology: Features["topology"]): Features => ({
  topology,
  persistent: true,
  newSubscriberReceivesOldMessages: true,
  ordered: true,
  consumerGroups: true,
  exactlyOnce: true,
  redelivery: true,
  ackDeadline: "1 second",
  restartable: true
})

const on = (cluster: 1 | 3) =>
  Adapters.jetStream({ replicas: cluster, ackWait: "1 second" }).pipe(
    Layer.provideMerge(JetStreamManager.JetStreamManager.layerWith({ timeout: "15 seconds" })),
    Layer.provide(LocalNats.layer({ server: { cluster } }))
  )

suite("JetStream consumer, single node", on(1), features("single"))

suite("JetStream consumer, 3-node cluster (R3)", on(3), features("cluster"))
