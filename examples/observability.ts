/**
 * effect-nats' metrics and traces through Effect's exporters: Prometheus
 * text on an HTTP endpoint (`/metrics`, `effect/observability`'s
 * `PrometheusMetrics`), and traces and metrics to an OTLP collector when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`http://localhost:4318`, say). A small
 * workload runs (orders published and processed, a few requests); then the
 * example reads its own `/metrics` and prints the effect-nats lines.
 *
 * Run: npm run example -- observability   (METRICS_PORT picks the port; default 9464)
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Config, Deferred, Effect, Layer, Option, Schema } from "effect"
import { FetchHttpClient, HttpRouter, HttpServer } from "effect/http"
import { OtlpMetrics, OtlpSerialization, OtlpTracer, PrometheusMetrics } from "effect/observability"
import { createServer } from "node:http"
import { Consumer, JetStream, JetStreamManager, LocalNats, NatsClient, Processor } from "../src/index.ts"

/** Prometheus text at GET /metrics. */
export const PrometheusLive = (port: number) =>
  HttpRouter.serve(PrometheusMetrics.layerHttp({ path: "/metrics" }), { disableListenLog: true, disableLogger: true })
    .pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { port })))

/** Traces and metrics to an OTLP collector, when OTEL_EXPORTER_OTLP_ENDPOINT is set. */
export const OtlpLive = Layer.unwrap(
  Effect.map(Config.option(Config.String("OTEL_EXPORTER_OTLP_ENDPOINT")), (endpoint) => {
    if (Option.isNone(endpoint)) return Layer.empty
    const resource = { serviceName: "effect-nats-example" }
    return Layer.mergeAll(
      OtlpTracer.layer({ url: `${endpoint.value}/v1/traces`, resource }),
      OtlpMetrics.layer({ url: `${endpoint.value}/v1/metrics`, resource })
    ).pipe(Layer.provide(OtlpSerialization.layerJson), Layer.provide(FetchHttpClient.layer))
  })
)

const Order = Schema.Struct({ id: Schema.Int })

/** Orders published and processed, requests answered: something to measure. */
export const workload = Effect.gen(function*() {
  const nats = yield* NatsClient.NatsClient
  const jsm = yield* JetStreamManager.JetStreamManager
  const js = yield* JetStream.JetStream
  yield* jsm.createOrUpdateStream({ name: "OBS_ORDERS", subjects: ["obs.orders.>"] })
  yield* jsm.createOrUpdateConsumer("OBS_ORDERS", { durable: "billing" })
  const done = yield* Deferred.make<void>()
  let handled = 0
  yield* Processor.make({
    consumer: yield* Consumer.make({ stream: "OBS_ORDERS", durable: "billing" }),
    codec: Order,
    lagInterval: "100 millis",
    handler: () => ++handled === 20 ? Deferred.succeed(done, undefined) : Effect.void
  })
  for (let id = 0; id < 20; id++) {
    yield* js.publish("obs.orders.created", JSON.stringify({ id })).pipe(Effect.withSpan("POST /orders"))
  }
  yield* nats.serve("obs.prices", (msg) => Effect.succeed(msg.data))
  for (let i = 0; i < 5; i++) yield* nats.request("obs.prices", "sku-1")
  yield* Deferred.await(done).pipe(Effect.timeout("10 seconds"))
})

/** Runs the workload, then reads /metrics; returns the effect-nats lines. */
export const program = Effect.gen(function*() {
  yield* workload
  const server = yield* HttpServer.HttpServer
  const port = "port" in server.address ? server.address.port : 0
  const text = yield* Effect.promise(() => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()))
  const lines = text.split("\n").filter((line) => line.startsWith("effect_nats_"))
  // the histograms' buckets left out of the log: their counts and sums are there
  for (const line of lines.filter((l) => !l.includes("_bucket{"))) yield* Effect.log(line)
  yield* Effect.log(`all of it at http://127.0.0.1:${port}/metrics`)
  return lines
})

const port = Number(process.env["METRICS_PORT"] ?? 9464)
export const main = Effect.scoped(program).pipe(
  Effect.provide(Layer.mergeAll(JetStream.JetStream.layer, JetStreamManager.JetStreamManager.layer)),
  Effect.provide(Layer.mergeAll(PrometheusLive(port), OtlpLive)),
  Effect.provide(LocalNats.layerConfig({ client: { logEvents: false } }))
)
