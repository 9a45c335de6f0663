/**
 * The conformance suite over core NATS subscriptions (queue groups; at most once, nothing kept), on a
 * single node and on a 3-node cluster.
 */
import { Layer } from "effect"
import { LocalNats } from "../../src/index.ts"
import type { Features } from "../../src/testing/Conformance.ts"
import { suite } from "../../src/testing/Conformance.ts"
import * as Adapters from "./adapters.ts"

const features = (topology: Features["topology"]): Features => ({
  topology,
  persistent: false,
  newSubscriberReceivesOldMessages: false,
  ordered: true,
  consumerGroups: true,
  exactlyOnce: true,
  redelivery: false,
  ackDeadline: undefined,
  restartable: false
})

suite("core NATS, single node", Adapters.core.pipe(Layer.provide(LocalNats.layer())), features("single"))

suite(
  "core NATS, 3-node cluster",
  Adapters.core.pipe(Layer.provide(LocalNats.layer({ server: { cluster: 3 } }))),
  features("cluster")
)
