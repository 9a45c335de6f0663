import { assert, describe, it, layer } from "@effect/vitest"
import { Duration, Effect, Layer, Logger } from "effect"
import * as AuthExample from "../examples/auth.ts"
import * as ConfigService from "../examples/config-service.ts"
import * as Connection from "../examples/connection.ts"
import * as FileStore from "../examples/file-store.ts"
import * as JsPublish from "../examples/jetstream-publish.ts"
import * as JsPullBatch from "../examples/jetstream-pull-batch.ts"
import * as JsPushConsumer from "../examples/jetstream-push-consumer.ts"
import * as JsSetup from "../examples/jetstream-setup.ts"
import * as JobQueue from "../examples/job-queue.ts"
import * as Observability from "../examples/observability.ts"
import * as OrderProcessor from "../examples/order-processor.ts"
import * as PricingService from "../examples/pricing-service.ts"
import * as RpcGroupExample from "../examples/rpc-group.ts"
import * as TraceOrder from "../examples/trace-order.ts"
import type { ConnectionEvent } from "../src/index.ts"
import { JetStream, JetStreamManager, LocalNats } from "../src/index.ts"

const Env = JsSetup.JetStreamLayer.pipe(Layer.provideMerge(LocalNats.layer({ client: { logEvents: false } })))

describe("connection example", () => {
  it.effect("the article's production connection: TLS, a reconnect ridden out, the lifecycle to Closed", () =>
    Effect.gen(function*() {
      const seen: Array<ConnectionEvent.ConnectionEvent["_tag"]> = []
      const layer = LocalNats.layer({
        server: { jetstream: false, tls: {} },
        client: {
          ...Connection.options,
          onEvent: (event) => Effect.andThen(Effect.sync(() => seen.push(event._tag)), Connection.logLifecycle(event))
        }
      })
      const { tls } = yield* Effect.scoped(Connection.program).pipe(
        Effect.provide(layer),
        Effect.provide(Logger.layer([]))
      )
      assert.isTrue(tls)
      const lifecycle = seen.filter((tag) => tag === "Disconnected" || tag === "Reconnected" || tag === "Closed")
      assert.deepStrictEqual(lifecycle, ["Disconnected", "Reconnected", "Closed"], seen.join())
    }))
})

describe("auth example", () => {
  it.effect("password, NKey seed file and creds file each connect and round-trip a request", () =>
    Effect.gen(function*() {
      const replies = yield* Effect.scoped(AuthExample.program)
      assert.deepStrictEqual(replies, ["hello, password", "hello, nkey", "hello, creds"])
    }).pipe(Effect.provide(Logger.layer([]))))
})

describe("JetStream examples", () => {
  layer(Env, { excludeTestServices: true })("on a real server", (it) => {
    it.effect("jetstream-setup: ORDERS has the article's configuration; a second setup changes nothing", () =>
      Effect.gen(function*() {
        const { first, second, unchanged } = yield* JsSetup.program
        assert.isTrue(unchanged)
        const config = second.config
        assert.strictEqual(config.name, "ORDERS")
        assert.deepStrictEqual(config.subjects, ["orders.>"])
        assert.isTrue(config.maxAge !== undefined && Duration.equals(config.maxAge, Duration.days(7)))
        assert.strictEqual(config.storage, "file")
        assert.strictEqual(config.replicas, 1)
        assert.strictEqual(config.retention, "limits")
        assert.strictEqual(config.discard, "old")
        assert.strictEqual(first.created.getTime(), second.created.getTime())
        const jsm = yield* JetStreamManager.JetStreamManager
        const info = yield* jsm.streamInfo("ORDERS")
        assert.strictEqual(info.created.getTime(), first.created.getTime())
      }))

    it.effect("jetstream-publish: N stored one by one and N pipelined, no duplicates; republished ids store nothing", () =>
      Effect.gen(function*() {
        const result = yield* JsPublish.program(500, 64)
        for (const run of [result.sequential, result.pipelined]) {
          assert.strictEqual(run.published, 500)
          assert.strictEqual(run.stored, 500)
          assert.strictEqual(run.duplicates, 0)
          assert.isTrue(run.consecutive)
        }
        assert.strictEqual(result.again.published, 500)
        assert.strictEqual(result.again.duplicates, 500)
        assert.strictEqual(result.again.stored, 0)
      }))

    it.effect("jetstream-push-consumer: every order acked, the failing one redelivered once", () =>
      Effect.gen(function*() {
        const result = yield* Effect.scoped(JsPushConsumer.program(10, 3))
        assert.isTrue(result.push)
        const acked = result.deliveries.filter((d) => d.outcome === "acked")
        assert.strictEqual(new Set(acked.map((d) => d.order_id)).size, 10)
        assert.strictEqual(acked.length, 10)
        const naks = result.deliveries.filter((d) => d.outcome === "nak")
        assert.strictEqual(naks.length, 1)
        assert.strictEqual(naks[0]?.deliveryCount, 1)
        assert.strictEqual(result.redelivered.length, 1)
        assert.strictEqual(result.redelivered[0]?.order_id, naks[0]?.order_id)
        assert.strictEqual(result.redelivered[0]?.deliveryCount, 2)
        assert.strictEqual(result.redelivered[0]?.outcome, "acked")
        const config = result.info.config
        assert.strictEqual(config.durable, "order-processor")
        assert.strictEqual(config.filterSubject, "orders.created")
        assert.strictEqual(config.ackPolicy, "explicit")
        assert.strictEqual(config.maxDeliver, 5)
        assert.isTrue(config.ackWait !== undefined && Duration.equals(config.ackWait, Duration.seconds(30)))
        assert.strictEqual(result.info.numAckPending, 0)
      }))

    it.effect("jetstream-pull-batch: batches of at most 50, every fetched message acked", () =>
      Effect.gen(function*() {
        const result = yield* Effect.scoped(JsPullBatch.program(120))
        assert.isAtLeast(result.pendingBefore, 120)
        assert.strictEqual(result.acked, result.pendingBefore)
        for (const batch of result.batches.slice(0, -1)) assert.strictEqual(batch.size, 50)
        const last = result.batches[result.batches.length - 1]
        assert.isDefined(last)
        assert.isBelow(last?.size ?? 50, 50)
        // a partial batch returns when its max wait is up
        assert.isAtLeast(last?.millis ?? 0, 1900)
        assert.strictEqual(result.info.numPending, 0)
        assert.strictEqual(result.info.numAckPending, 0)
        assert.strictEqual(result.info.config.ackPolicy, "explicit")
      }))

    it.effect("order-processor: good orders processed (some after a retry); the declined and the poison dead-lettered", () =>
      Effect.gen(function*() {
        const outcome = yield* OrderProcessor.program(20)
        assert.strictEqual(outcome.processed, 19)
        assert.deepStrictEqual(outcome.retried.length, 4)
        assert.deepStrictEqual(outcome.deadLettered.map((d) => d.reason).sort(), ["decode", "retries_exhausted"])
      }))
  })
})

describe("KV, Object Store and persistence examples", () => {
  it.live(
    "config-service: every change is live, also after a server restart",
    () =>
      Effect.gen(function*() {
        const { changes, final } = yield* Effect.scoped(ConfigService.program)
        assert.deepStrictEqual(changes, [100, 200, 300])
        assert.strictEqual(final, 300)
      }).pipe(Effect.provide(LocalNats.layer({ client: { logEvents: false } })), Effect.provide(Logger.layer([]))),
    60_000
  )

  it.live(
    "file-store: a file up and down as Streams, identical",
    () =>
      Effect.gen(function*() {
        const result = yield* Effect.scoped(FileStore.program(8))
        assert.isTrue(result.same)
        assert.strictEqual(result.size, 8 * 1024 * 1024)
      }).pipe(Effect.provide(LocalNats.layer({ client: { logEvents: false } })), Effect.provide(Logger.layer([]))),
    60_000
  )

  it.live(
    "job-queue: four jobs done once each, the flaky one on its second attempt, the broken one dead-lettered",
    () =>
      Effect.gen(function*() {
        const report = yield* JobQueue.program.pipe(Effect.provide(JobQueue.QueueLayer))
        assert.deepStrictEqual([...report.done].sort(), ["cat.png", "dog.png", "flaky.png", "owl.png"])
        assert.deepStrictEqual(report.attempts, {
          "cat.png": 1,
          "dog.png": 1,
          "flaky.png": 2,
          "broken.png": 3,
          "owl.png": 1
        })
      }).pipe(Effect.provide(LocalNats.layer({ client: { logEvents: false } })), Effect.provide(Logger.layer([]))),
    60_000
  )
})

describe("trace-order example", () => {
  it.live(
    "one trace from the HTTP handler to the ack, drawn as a tree",
    () =>
      Effect.gen(function*() {
        const { lines, spans } = yield* Effect.scoped(TraceOrder.program)
        const names = lines.map((line) => line.trim().replace(/^[└├─│ ]+/, "").replace(/\s+[\d.]+ ms$/, ""))
        assert.deepStrictEqual(names, [
          "POST /orders (server)",
          "publish shop.orders.created (producer)",
          "process shop.orders.created (consumer)",
          "charge card",
          "ack (consumer)"
        ])
        assert.strictEqual(
          new Set(spans.filter((s) => names.some((n) => n.startsWith(s.name))).map((s) => s.traceId)).size,
          1
        )
      }).pipe(Effect.provide(LocalNats.layer({ client: { logEvents: false } })), Effect.provide(Logger.layer([]))),
    60_000
  )
})

describe("observability example", () => {
  it.live(
    "Prometheus text at /metrics after the workload: effect-nats' counters, histograms and gauges",
    () =>
      Effect.gen(function*() {
        const lines = yield* Effect.scoped(Observability.program)
        const has = (prefix: string) => lines.some((line) => line.startsWith(prefix))
        assert.isTrue(has(`effect_nats_processor_messages{outcome="acked",stream="OBS_ORDERS",consumer="billing"} 20`))
        assert.isTrue(has(`effect_nats_messages_published{subject="obs.>"} 20`), lines.join("\n"))
        assert.isTrue(has(`effect_nats_request_duration_ms_count{subject="obs.>"} 5`))
        assert.isTrue(has(`effect_nats_processing_duration_ms_count{stream="OBS_ORDERS",consumer="billing"} 20`))
        assert.isTrue(has(`effect_nats_message_age_ms_count{stream="OBS_ORDERS",consumer="billing"} 20`))
        assert.isTrue(has(`effect_nats_consumer_pending{stream="OBS_ORDERS",consumer="billing"}`))
      }).pipe(
        Effect.provide(Layer.mergeAll(JetStream.JetStream.layer, JetStreamManager.JetStreamManager.layer)),
        Effect.provide(Observability.PrometheusLive(0)),
        Effect.provide(LocalNats.layer({ client: { logEvents: false } })),
        Effect.provide(Logger.layer([]))
      ),
    60_000
  )
})

describe("pricing-service example", () => {
  it.live("two instances discovered with their endpoint; the stats count every call and the error", () =>
    Effect.gen(function*() {
      const report = yield* Effect.scoped(PricingService.program)
      assert.deepStrictEqual([...report.discovered].sort(), [...report.instances].sort())
      assert.strictEqual(report.served, 21)
      assert.strictEqual(report.errors, 1)
    }).pipe(Effect.provide(LocalNats.layer({ client: { logEvents: false } })), Effect.provide(Logger.layer([]))))
})

describe("rpc-group example", () => {
  it.live("an RpcGroup over NATS: three instances share the calls, a stream, a typed error, a graceful stop", () =>
    Effect.gen(function*() {
      const report = yield* Effect.scoped(RpcGroupExample.program).pipe(Effect.provide(RpcGroupExample.ClientProtocol))
      assert.strictEqual(report.order.id, "o-7")
      assert.strictEqual(report.missing, "OrderNotFound")
      assert.strictEqual(report.streamed, 50)
      assert.strictEqual(Object.values(report.spread).reduce((a, b) => a + b, 0), 30)
      assert.isTrue(Object.keys(report.spread).length >= 2)
      assert.isFalse(report.after.includes("east"))
    }).pipe(Effect.provide(LocalNats.layer({ client: { logEvents: false } })), Effect.provide(Logger.layer([]))))
})
