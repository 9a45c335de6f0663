/**
 * The conformance suite over the Processor (4 handlers at once, a handler timeout of 1 s, ack wait 1 s)
 * on a durable pull consumer per group, on a single node and on a 3-node cluster (streams of 3 replicas).
 */
import { Layer } from "effect"
import { JetStream, JetStreamManager, LocalNats } from "../../src/index.ts"
import type { Features } from "../../src/testing/Conformance.ts"
import { suite } from "../../src/testing/Conformance.ts"
import * as Adapters from "./adapters.ts"

const features = (topology: Features["topology"]): Features => ({
  topology,
  persistent: true,
  newSubscriberReceivesOldMessages: true,
  // 4 handlers at once: no order
  ordered: false,
  consumerGroups: true,
  exactlyOnce: true,
  redelivery: true,
  ackDeadline: "1 second",
  restartable: true
})

const on = (cluster: 1 | 3) =>
  Adapters.processor({ replicas: cluster, ackWait: "1 second", concurrency: 4, handlerTimeout: "1 second" }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(JetStreamManager.JetStreamManager.layerWith({ timeout: "15 seconds" }), JetStream.JetStream.layer)
    ),
    Layer.provide(LocalNats.layer({ server: { cluster } }))
  )

suite("Processor, single node", on(1), features("single"))

suite("Processor, 3-node cluster (R3)", on(3), features("cluster"))
