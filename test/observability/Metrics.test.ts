/**
 * The metrics after a known workload, read back exactly: every family of
 * this file's subjects is its own (`m*.>`), so the counts are this test's.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Metric, Schedule, Schema, Scope, Stream } from "effect"
import {
  Codec,
  Consumer,
  JetStream,
  JetStreamManager,
  LocalNats,
  NatsClient,
  NatsServer,
  Processor,
  Subject,
  TypedSubject
} from "../../src/index.ts"
import * as Metrics from "../../src/internal/metrics.ts"

const count = (metric: Metric.Metric<number, unknown>, attributes: Record<string, string>) =>
  Effect.map(Metric.value(Metric.withAttributes(metric, attributes)), (state) => (state as { count: number }).count)

const gauge = (metric: Metric.Metric<number, unknown>, attributes: Record<string, string>) =>
  Effect.map(Metric.value(Metric.withAttributes(metric, attributes)), (state) => (state as { value: number }).value)

/** Until `f` gives `expected` (metrics of other fibers land a little later), for at most 5 s. */
const reaches = <E, R>(f: Effect.Effect<number, E, R>, expected: number) =>
  f.pipe(
    Effect.repeat({ until: (n) => n === expected, schedule: Schedule.spaced("10 millis") }),
    Effect.timeout("5 seconds"),
    Effect.flatMap(() => f)
  )

describe("Metrics", () => {
  layer(LocalNats.layer({ client: { logEvents: false } }), { excludeTestServices: true })("on a real server", (it) => {
    it.effect("core: published, received (and bytes) by family, request latencies, slow-consumer drops", () =>
      Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const server = yield* NatsServer.NatsServer
        const other = yield* NatsClient.make({ servers: server.urls, logEvents: false })
        const ten = new Uint8Array(10)
        const received = yield* (yield* other.subscribeScoped("mcore.>")).pipe(
          Stream.take(12),
          Stream.runCount,
          Effect.forkChild
        )
        yield* other.flush
        for (let i = 0; i < 7; i++) yield* nats.publish("mcore.a", ten)
        yield* nats.publishAll(Array.from({ length: 5 }, () => ({ subject: "mcore.b", payload: ten })))
        assert.strictEqual(yield* Fiber.join(received), 12)
        assert.strictEqual(yield* count(Metrics.published, { subject: "mcore.>" }), 12)
        assert.strictEqual(yield* count(Metrics.publishedBytes, { subject: "mcore.>" }), 120)
        assert.strictEqual(yield* count(Metrics.received, { subject: "mcore.>" }), 12)
        assert.strictEqual(yield* count(Metrics.receivedBytes, { subject: "mcore.>" }), 120)
        // a typed subject's template is its destination: one family, whatever the params
        const OrderEvents = TypedSubject.make(
          Subject.template("mtyped.{id}.created"),
          Schema.Struct({ id: Schema.String })
        )
        for (const id of ["a", "b", "c"]) yield* TypedSubject.publish(OrderEvents, { id }, { params: { id } })
        assert.strictEqual(yield* count(Metrics.published, { subject: "mtyped.{id}.created" }), 3)
        // request/reply
        const scope = yield* Effect.scope
        yield* other.serve("mreq.echo", (msg) => Effect.succeed(msg.data)).pipe(Scope.provide(scope))
        for (let i = 0; i < 3; i++) yield* nats.request("mreq.echo", "x")
        assert.strictEqual(yield* count(Metrics.requestDuration, { subject: "mreq.>" }), 3)
        // a subscription of 5 that nobody reads, 20 messages: 15 dropped, counted by its release at the latest
        yield* Effect.scoped(Effect.gen(function*() {
          yield* other.subscribeScoped("mdrop.x", { bufferSize: 5, overflow: "dropNewest" })
          yield* other.flush
          for (let i = 0; i < 20; i++) yield* nats.publish("mdrop.x", ten)
          yield* nats.flush
          yield* other.flush
        }))
        assert.strictEqual(yield* count(Metrics.slowConsumerDropped, { subject: "mdrop.x" }), 15)
        // its buffer was full when it dropped
        assert.strictEqual(yield* gauge(Metrics.buffered, { subject: "mdrop.x" }), 5)
      }))

    it.effect("JetStream: publishes counted once stored; the Processor's durations, ages and the consumer's lag", () =>
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.make()
        yield* jsm.createOrUpdateStream({ name: "MJS", subjects: ["mjs.>"] })
        yield* jsm.createOrUpdateConsumer("MJS", { durable: "w" })
        const js = yield* JetStream.make()
        yield* js.publish("mjs.one", "a")
        yield* js.publish("mjs.two", "b")
        yield* Stream.runDrain(js.publishAll([1, 2, 3].map((i) => ({ subject: "mjs.all", payload: `${i}` }))))
        assert.strictEqual(yield* count(Metrics.published, { subject: "mjs.>" }), 5)
        // a message's destination names its family
        yield* Stream.runDrain(js.publishAll([{ subject: "mjs.order.7", payload: "c", destination: "mjs.order.{id}" }]))
        assert.strictEqual(yield* count(Metrics.published, { subject: "mjs.order.{id}" }), 1)
        assert.strictEqual(yield* count(Metrics.published, { subject: "mjs.>" }), 5)
        const done = yield* Deferred.make<void>()
        let handled = 0
        yield* Effect.gen(function*() {
          const consumer = yield* Consumer.make({ stream: "MJS", durable: "w" })
          yield* Processor.make({
            consumer,
            codec: Codec.bytes,
            lagInterval: "100 millis",
            handler: () => ++handled === 6 ? Deferred.succeed(done, undefined) : Effect.void
          })
        }).pipe(Effect.provide(Layer.mergeAll(JetStream.JetStream.layer, JetStreamManager.JetStreamManager.layer)))
        yield* Deferred.await(done)
        const attributes = { stream: "MJS", consumer: "w" }
        assert.strictEqual(yield* reaches(count(Metrics.processingDuration, attributes), 6), 6)
        assert.strictEqual(yield* count(Metrics.messageAge, attributes), 6)
        assert.strictEqual(yield* count(Metrics.consumed, attributes), 6)
        // the lag, read every 100 ms: nothing left, nothing waiting for its ack
        assert.strictEqual(yield* reaches(gauge(Metrics.consumerPending, attributes), 0), 0)
        assert.strictEqual(yield* reaches(gauge(Metrics.consumerAckPending, attributes), 0), 0)
      }))

    it.effect("reconnects are counted", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const nats = yield* NatsClient.NatsClient
        const before = (yield* Metric.value(Metrics.reconnects)).count
        yield* server.restart()
        yield* nats.flush.pipe(Effect.retry({ schedule: Schedule.spaced("50 millis"), times: 100 }))
        assert.strictEqual(yield* reaches(Effect.map(Metric.value(Metrics.reconnects), (s) => s.count - before), 1), 1)
      }))
  })
})
