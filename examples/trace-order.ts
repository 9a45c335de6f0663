/**
 * One order's trace across the broker, drawn in the terminal: an HTTP
 * handler publishes the order to JetStream; a Processor on another
 * connection (another process, in production) charges the card and acks.
 * An in-memory tracer records the spans (any Effect tracer, OTLP say, sees
 * the same); the message carries the producer's span in its `traceparent`
 * header, so the handler's span is its child: one trace.
 *
 * Run: npm run example -- trace-order
 */
import { Deferred, Effect, Layer, Option, Schedule, Schema, Tracer } from "effect"
import { Consumer, JetStream, JetStreamManager, LocalNats, NatsClient, NatsServer, Processor } from "../src/index.ts"

/** An ended span, as the picture needs it. */
export interface EndedSpan {
  readonly name: string
  readonly kind: Tracer.SpanKind
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly millis: number
  readonly attributes: Record<string, unknown>
  readonly links: ReadonlyArray<{ readonly traceId: string; readonly spanId: string }>
}

/** A tracer that keeps every ended span in memory. */
export const memoryTracer = () => {
  const ended: Array<EndedSpan> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      const end = span.end.bind(span)
      span.end = (endTime, exit) => {
        end(endTime, exit)
        const status = span.status
        ended.push({
          name: span.name,
          kind: span.kind,
          traceId: span.traceId,
          spanId: span.spanId,
          parentSpanId: Option.getOrUndefined(span.parent)?.spanId,
          millis: status._tag === "Ended" ? Number(status.endTime - status.startTime) / 1e6 : 0,
          attributes: Object.fromEntries(span.attributes),
          links: span.links.map((l) => ({ traceId: l.span.traceId, spanId: l.span.spanId }))
        })
      }
      return span
    }
  })
  return { tracer, ended }
}

/** The spans of one trace as a tree, a line each: name, kind, duration. */
export const drawTrace = (spans: ReadonlyArray<EndedSpan>, traceId: string): ReadonlyArray<string> => {
  const inTrace = spans.filter((s) => s.traceId === traceId)
  const ids = new Set(inTrace.map((s) => s.spanId))
  const children = (id: string | undefined) =>
    inTrace.filter((s) =>
      id === undefined ? s.parentSpanId === undefined || !ids.has(s.parentSpanId) : s.parentSpanId === id
    )
  const lines: Array<string> = []
  const walk = (span: EndedSpan, prefix: string, last: boolean, root: boolean) => {
    const label = `${prefix}${root ? "" : last ? "└─ " : "├─ "}${span.name}${
      span.kind === "internal" ? "" : ` (${span.kind})`
    }`
    lines.push(`${label.padEnd(56)} ${span.millis.toFixed(2).padStart(7)} ms`)
    const next = children(span.spanId)
    next.forEach((child, i) =>
      walk(child, root ? "" : `${prefix}${last ? "   " : "│  "}`, i === next.length - 1, false)
    )
  }
  for (const root of children(undefined)) walk(root, "", true, true)
  return lines
}

const Order = Schema.Struct({ id: Schema.String, cents: Schema.Int })

export const program = Effect.gen(function*() {
  const { ended, tracer } = memoryTracer()
  const jsm = yield* JetStreamManager.make()
  yield* jsm.createOrUpdateStream({ name: "SHOP", subjects: ["shop.>"] })
  yield* jsm.createOrUpdateConsumer("SHOP", { durable: "billing" })
  const charged = yield* Deferred.make<void>()
  // the billing service: its own connection
  const server = yield* NatsServer.NatsServer
  const billing = yield* NatsClient.make({
    servers: server.urls,
    logEvents: false,
    // a TLS server (the demo's): trust its throwaway CA
    ...(server.tls === undefined ? {} : { tls: { caFile: server.tls.caFile } })
  })
  yield* Effect.gen(function*() {
    const consumer = yield* Consumer.make({ stream: "SHOP", durable: "billing" })
    yield* Processor.make({
      consumer,
      codec: Order,
      handler: (order) =>
        Effect.sleep("2 millis").pipe(
          Effect.withSpan("charge card", { attributes: { "order.id": order.id } }),
          Effect.andThen(Deferred.succeed(charged, undefined))
        )
    })
  }).pipe(
    Effect.provide(Layer.mergeAll(JetStream.JetStream.layer, JetStreamManager.JetStreamManager.layer)),
    Effect.provideService(NatsClient.NatsClient, billing),
    Effect.withTracer(tracer)
  )
  // the shop's HTTP handler
  const js = yield* JetStream.make()
  yield* js.publish("shop.orders.created", JSON.stringify({ id: "o-42", cents: 1999 }), { msgId: "o-42" }).pipe(
    Effect.withSpan("POST /orders", { kind: "server" }),
    Effect.withTracer(tracer)
  )
  yield* Deferred.await(charged).pipe(Effect.timeout("10 seconds"))
  // the message's span ends just after its ack
  yield* Effect.sync(() => ended.some((s) => s.name === "process shop.orders.created")).pipe(
    Effect.repeat({ until: (done) => done, schedule: Schedule.spaced("5 millis") }),
    Effect.timeout("5 seconds")
  )
  const root = ended.find((s) => s.name === "POST /orders")
  const lines = root === undefined ? [] : drawTrace(ended, root.traceId)
  for (const line of lines) yield* Effect.log(line)
  return { lines, spans: ended }
})

export const main = Effect.scoped(program).pipe(Effect.provide(LocalNats.layer({ client: { logEvents: false } })))
