/**
 * Trace context across the broker: spans named and attributed by the
 * OpenTelemetry messaging conventions, the producer's span carried in the
 * message (`traceparent`), the consumer's span its child (or linked), on two
 * connections (two processes' worth of clients), with an in-memory tracer.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Schedule, Schema, Scope, Stream } from "effect"
import { type EndedSpan, memoryTracer } from "../../examples/trace-order.ts"
import {
  Consumer,
  JetStream,
  JetStreamManager,
  LocalNats,
  NatsClient,
  NatsServer,
  Processor,
  Subject,
  Tracing,
  TypedSubject
} from "../../src/index.ts"

type Recorded = EndedSpan

/** A tracer that records every span when it ends (the trace-order example's). */
const recordingTracer = memoryTracer

const Order = Schema.Struct({ id: Schema.Int })

/** A second client on the same server: the other process. */
const otherClient = Effect.gen(function*() {
  const server = yield* NatsServer.NatsServer
  return yield* NatsClient.make({ servers: server.urls, logEvents: false })
})

const named = (ended: ReadonlyArray<Recorded>, name: string) => {
  const span = ended.find((s) => s.name === name)
  assert.isDefined(span, `a span named ${name} among ${ended.map((s) => s.name).join(", ")}`)
  return span as Recorded
}

/** Once the span named `name` has ended (spans end just after the work they time). */
const ends = (ended: ReadonlyArray<Recorded>, name: string) =>
  Effect.sync(() => ended.some((s) => s.name === name)).pipe(
    Effect.repeat({ until: (done) => done, schedule: Schedule.spaced("5 millis") }),
    Effect.timeout("5 seconds")
  )

describe("Tracing", () => {
  layer(LocalNats.layer({ client: { logEvents: false } }), { excludeTestServices: true })("on a real server", (it) => {
    it.effect("a JetStream publish's trace reaches the Processor's handler on another connection, as its parent", () =>
      Effect.gen(function*() {
        const { ended, tracer } = recordingTracer()
        const jsm = yield* JetStreamManager.make()
        yield* jsm.createOrUpdateStream({ name: "TRACED", subjects: ["traced.>"] })
        yield* jsm.createOrUpdateConsumer("TRACED", { durable: "worker" })
        const other = yield* otherClient
        const handled = yield* Deferred.make<Option.Option<string>>()
        // the consuming process: its own connection and services
        yield* Effect.gen(function*() {
          const consumer = yield* Consumer.make({ stream: "TRACED", durable: "worker" })
          yield* Processor.make({
            consumer,
            codec: Order,
            handler: () =>
              Effect.flatMap(
                Effect.option(Effect.currentSpan),
                (span) => Deferred.succeed(handled, Option.map(span, (s) => s.name))
              )
          })
        }).pipe(
          Effect.provide(Layer.mergeAll(JetStream.JetStream.layer, JetStreamManager.JetStreamManager.layer)),
          Effect.provideService(NatsClient.NatsClient, other),
          Effect.withTracer(tracer)
        )
        // the producing process: a request handler that publishes an order
        const js = yield* JetStream.make()
        yield* js.publish("traced.orders", JSON.stringify({ id: 1 }), { msgId: "order-1" }).pipe(
          Effect.withSpan("POST /orders", { kind: "server" }),
          Effect.withTracer(tracer)
        )
        assert.deepStrictEqual(yield* Deferred.await(handled), Option.some("process traced.orders"))
        const root = named(ended, "POST /orders")
        const publish = named(ended, "publish traced.orders")
        yield* ends(ended, "process traced.orders")
        const process = named(ended, "process traced.orders")
        assert.strictEqual(publish.kind, "producer")
        assert.strictEqual(publish.parentSpanId, root.spanId)
        assert.strictEqual(process.kind, "consumer")
        assert.strictEqual(process.traceId, root.traceId, "one trace from the request to the handler")
        assert.strictEqual(process.parentSpanId, publish.spanId, "the handler's span is the publish span's child")
        const ack = named(ended, "ack")
        assert.strictEqual(ack.parentSpanId, process.spanId, "the ack is settled inside the message's span")
        assert.strictEqual(ack.attributes["messaging.operation.type"], "settle")
        // the conventions' attributes
        assert.deepInclude(publish.attributes, {
          "messaging.system": "nats",
          "messaging.destination.name": "traced.orders",
          "messaging.operation.type": "send",
          "messaging.operation.name": "publish",
          "messaging.message.id": "order-1"
        })
        assert.isString(publish.attributes["server.address"])
        assert.isNumber(publish.attributes["server.port"])
        assert.deepInclude(process.attributes, {
          "messaging.system": "nats",
          "messaging.destination.name": "traced.orders",
          "messaging.operation.type": "process",
          "messaging.consumer.group.name": "worker",
          "messaging.message.id": "order-1",
          "messaging.nats.stream": "TRACED",
          "messaging.nats.delivery_count": 1
        })
      }))

    it.effect("a request's trace reaches the responder on another connection; with traceParent link, a linked new trace", () =>
      Effect.gen(function*() {
        const { ended, tracer } = recordingTracer()
        const other = yield* otherClient
        const scope = yield* Effect.scope
        yield* other.serve("traced.echo", (msg) => Effect.succeed(msg.data), { queue: "echoers" }).pipe(
          Scope.provide(scope),
          Effect.withTracer(tracer)
        )
        yield* other.serve("traced.linked", (msg) => Effect.succeed(msg.data), { traceParent: "link" }).pipe(
          Scope.provide(scope),
          Effect.withTracer(tracer)
        )
        const nats = yield* NatsClient.NatsClient
        yield* Effect.gen(function*() {
          yield* nats.request("traced.echo", "hi")
          yield* nats.request("traced.linked", "hi")
        }).pipe(Effect.withSpan("checkout"), Effect.withTracer(tracer))
        yield* ends(ended, "process traced.linked")
        const root = named(ended, "checkout")
        const send = named(ended, "send traced.echo")
        const served = named(ended, "process traced.echo")
        assert.strictEqual(send.kind, "client")
        assert.strictEqual(send.parentSpanId, root.spanId)
        assert.strictEqual(served.kind, "server")
        assert.strictEqual(served.traceId, root.traceId)
        assert.strictEqual(served.parentSpanId, send.spanId)
        assert.strictEqual(served.attributes["messaging.consumer.group.name"], "echoers")
        const linkedSend = named(ended, "send traced.linked")
        const linked = named(ended, "process traced.linked")
        assert.notStrictEqual(linked.traceId, root.traceId, "a new trace")
        assert.deepStrictEqual(linked.links, [{ traceId: root.traceId, spanId: linkedSend.spanId }])
      }))

    it.effect("core publish carries the caller's span; without an active span no trace header is added", () =>
      Effect.gen(function*() {
        const { ended, tracer } = recordingTracer()
        const nats = yield* NatsClient.NatsClient
        const other = yield* otherClient
        const received = yield* (yield* other.subscribeScoped("traced.core")).pipe(
          Stream.take(4),
          Stream.runCollect,
          Effect.forkChild
        )
        yield* other.flush
        yield* nats.publish("traced.core", "traced").pipe(Effect.withSpan("job"), Effect.withTracer(tracer))
        yield* nats.publish("traced.core", "untraced")
        // a tracer installed but no span active: still nothing
        yield* nats.publish("traced.core", "untraced, tracer on").pipe(Effect.withTracer(tracer))
        const js = yield* JetStream.make()
        const jsm = yield* JetStreamManager.make()
        yield* jsm.createOrUpdateStream({ name: "UNTRACED", subjects: ["untraced.js"] })
        yield* js.publish("untraced.js", "untraced")
        yield* nats.publish("traced.core", "user headers kept", { headers: { "X-Id": "7" } }).pipe(
          Effect.withSpan("job 2"),
          Effect.withTracer(tracer)
        )
        // a typed subject's span names its template
        const Typed = TypedSubject.make(Subject.template("traced.{kind}.made"), Schema.String)
        yield* TypedSubject.publish(Typed, "x", { params: { kind: "a" } }).pipe(
          Effect.withSpan("typed"),
          Effect.withTracer(tracer)
        )
        yield* ends(ended, "publish traced.{kind}.made")
        assert.strictEqual(
          named(ended, "publish traced.{kind}.made").attributes["messaging.destination.name"],
          "traced.{kind}.made"
        )
        const msgs = yield* Fiber.join(received)
        const publish = named(ended, "publish traced.core")
        const [traced, untraced, tracerOn, withUser] = msgs
        assert.strictEqual(traced?.headers?.get("traceparent"), `00-${publish.traceId}-${publish.spanId}-01`)
        assert.isUndefined(untraced?.headers)
        assert.isUndefined(tracerOn?.headers)
        assert.strictEqual(withUser?.headers?.get("X-Id"), "7")
        assert.match(withUser?.headers?.get("traceparent") ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
        const stored = yield* jsm.getMessage("UNTRACED", { lastBySubject: "untraced.js" })
        assert.isTrue(
          Option.isSome(stored) && stored.value.headers === undefined,
          "no header on an untraced JetStream publish"
        )
      }))

    it.effect("publishAll (core and JetStream) carries one batch span's traceparent in every message, only under a span", () =>
      Effect.gen(function*() {
        const { ended, tracer } = recordingTracer()
        const nats = yield* NatsClient.NatsClient
        const other = yield* otherClient
        const received = yield* (yield* other.subscribeScoped("batch.core")).pipe(
          Stream.take(4),
          Stream.runCollect,
          Effect.forkChild
        )
        yield* other.flush
        const two = [{ subject: "batch.core", payload: "a" }, { subject: "batch.core", payload: "b" }]
        yield* nats.publishAll(two).pipe(Effect.withSpan("import"), Effect.withTracer(tracer))
        yield* nats.publishAll(two)
        const [a, b, c, d] = yield* Fiber.join(received)
        const root = named(ended, "import")
        const batch = ended.find((s) => s.name === "publish" && s.parentSpanId === root.spanId)
        assert.isDefined(batch)
        const expected = `00-${batch?.traceId}-${batch?.spanId}-01`
        assert.deepStrictEqual([a?.headers?.get("traceparent"), b?.headers?.get("traceparent")], [expected, expected])
        assert.deepStrictEqual([c?.headers, d?.headers], [undefined, undefined])
        // JetStream
        const js = yield* JetStream.make()
        const jsm = yield* JetStreamManager.make()
        yield* jsm.createOrUpdateStream({ name: "BATCH", subjects: ["batch.js.>"] })
        yield* Stream.runDrain(js.publishAll([{ subject: "batch.js.traced", payload: "x", msgId: "m1" }])).pipe(
          Effect.withSpan("sync"),
          Effect.withTracer(tracer)
        )
        yield* Stream.runDrain(js.publishAll([{ subject: "batch.js.untraced", payload: "y" }]))
        yield* ends(ended, "sync")
        const sync = named(ended, "sync")
        const jsBatch = ended.find((s) => s.name === "publish" && s.parentSpanId === sync.spanId)
        assert.isDefined(jsBatch)
        const traced = yield* jsm.getMessage("BATCH", { lastBySubject: "batch.js.traced" })
        const untraced = yield* jsm.getMessage("BATCH", { lastBySubject: "batch.js.untraced" })
        assert.strictEqual(
          Option.getOrUndefined(traced)?.headers?.get("traceparent"),
          `00-${jsBatch?.traceId}-${jsBatch?.spanId}-01`
        )
        assert.strictEqual(Option.getOrUndefined(traced)?.headers?.get("Nats-Msg-Id"), "m1")
        assert.isUndefined(Option.getOrUndefined(untraced)?.headers)
      }))

    it.effect("Tracing.process: a subscriber's handling of a message as the child of its publish span", () =>
      Effect.gen(function*() {
        const { ended, tracer } = recordingTracer()
        const nats = yield* NatsClient.NatsClient
        const other = yield* otherClient
        const done = yield* Deferred.make<void>()
        // registered on the server before the publish
        const orders = yield* other.subscribeScoped("orders.created")
        yield* orders.pipe(
          Stream.runForEach((msg) =>
            Effect.andThen(Effect.log("charging"), Deferred.succeed(done, undefined)).pipe(Tracing.process(msg))
          ),
          Effect.withTracer(tracer),
          Effect.forkChild
        )
        yield* other.flush
        yield* nats.publish("orders.created", "o-1").pipe(Effect.withSpan("checkout"), Effect.withTracer(tracer))
        yield* Deferred.await(done)
        yield* ends(ended, "process orders.created")
        const publish = named(ended, "publish orders.created")
        const processed = named(ended, "process orders.created")
        assert.strictEqual(processed.kind, "consumer")
        assert.strictEqual(processed.traceId, publish.traceId)
        assert.strictEqual(processed.parentSpanId, publish.spanId)
      }))
  })
})
