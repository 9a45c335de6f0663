/**
 * What tracing costs (issue 14): each scenario runs the same effect-nats
 * code twice, without a tracer (the "raw" column, here: effect-nats
 * untraced) and with one (the "effect-nats" column: a tracer installed that
 * makes spans and exports nothing, the caller under a span, so every
 * message carries a `traceparent` and every handling gets its span). The
 * ratio is the price of tracing; the untraced side is what every other
 * scenario measures against raw nats.js.
 */
import { Deferred, Effect, Stream, Tracer } from "effect"
import { Codec, Consumer, JetStream, JetStreamManager, NatsClient, Processor } from "../../src/index.ts"
import type { Context, Scenario } from "../harness.ts"
import { percentile } from "../harness.ts"
import type { Clients } from "./core.ts"

const tracer = Tracer.make({ span: (options) => new Tracer.NativeSpan(options) })
const payload = new Uint8Array(128).fill(116)
const rate = (n: number, startedMs: number) => n / ((performance.now() - startedMs) / 1000)

/** Under a span with the tracer installed, or as it is. */
const traced = (on: boolean) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  on ? effect.pipe(Effect.withSpan("bench"), Effect.withTracer(tracer)) : effect

export const tracingScenarios = (clients: Clients): ReadonlyArray<Scenario> => {
  const { pub, sub } = clients
  const count = (ctx: Context, full: number) => ctx.quick ? Math.floor(full / 10) : full
  let seq = 0

  const request = (on: boolean) => (ctx: Context) =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const subject = `bench.trace.rpc.${seq++}`
      yield* sub.serve(subject, (msg) => Effect.succeed(msg.data)).pipe(traced(on))
      yield* sub.flush
      const times: Array<number> = []
      yield* Effect.gen(function*() {
        for (let i = 0; i < count(ctx, 10_000); i++) {
          const t = performance.now()
          yield* pub.request(subject, payload)
          times.push(performance.now() - t)
        }
      }).pipe(traced(on))
      times.sort((a, b) => a - b)
      return { p50_ms: percentile(times, 0.5), p99_ms: percentile(times, 0.99) }
    })))

  const jsPublish = (on: boolean) => (ctx: Context) =>
    Effect.runPromise(
      Effect.gen(function*() {
        const jsm = yield* JetStreamManager.make()
        yield* jsm.createOrUpdateStream({ name: "BENCH_TRACE_PUB", subjects: ["bench.trace.pub"], storage: "memory" })
        const js = yield* JetStream.make()
        const n = count(ctx, 20_000)
        const t = performance.now()
        yield* Effect.gen(function*() {
          for (let i = 0; i < n; i++) yield* js.publish("bench.trace.pub", payload)
        }).pipe(traced(on))
        const result = { "msgs/s": rate(n, t) }
        yield* jsm.purgeStream("BENCH_TRACE_PUB")
        return result
      }).pipe(Effect.provideService(NatsClient.NatsClient, pub))
    )

  /** Messages published (traced: each with a traceparent), then a Processor (traced: a span per message). */
  const processor = (on: boolean) => (ctx: Context) =>
    Effect.runPromise(Effect.scoped(
      Effect.gen(function*() {
        const n = count(ctx, 100_000)
        const name = `BENCH_TRACE_WORK_${seq++}`
        const jsm = yield* JetStreamManager.make()
        yield* jsm.createOrUpdateStream({ name, subjects: [`bench.trace.${name}`], storage: "memory" })
        yield* jsm.createOrUpdateConsumer(name, { durable: "worker" })
        const js = yield* JetStream.make()
        yield* Stream.runDrain(
          js.publishAll(Array.from({ length: n }, () => ({ subject: `bench.trace.${name}`, payload })), { window: 512 })
        ).pipe(traced(on))
        const consumer = yield* Consumer.make({ stream: name, durable: "worker" }).pipe(
          Effect.provideService(JetStreamManager.JetStreamManager, jsm)
        )
        let handled = 0
        const finished = yield* Deferred.make<void>()
        const t = performance.now()
        yield* Processor.make({
          consumer,
          codec: Codec.bytes,
          handler: () => ++handled === n ? Deferred.succeed(finished, undefined) : Effect.void
        }).pipe(
          Effect.provideService(JetStream.JetStream, js),
          Effect.provideService(JetStreamManager.JetStreamManager, jsm),
          on ? Effect.withTracer(tracer) : (e) => e
        )
        yield* Deferred.await(finished)
        yield* Effect.yieldNow
        yield* sub.flush
        const result = { "msgs/s": rate(n, t) }
        yield* Effect.addFinalizer(() => Effect.ignore(jsm.deleteStream(name)))
        return result
      }).pipe(Effect.provideService(NatsClient.NatsClient, sub))
    ))

  const publishAll = (on: boolean) => (ctx: Context) =>
    Effect.runPromise(Effect.gen(function*() {
      const n = count(ctx, 500_000)
      const t = performance.now()
      yield* pub.publishAll(
        Stream.range(1, n).pipe(Stream.map(() => ({ subject: "bench.trace.all", payload })))
      ).pipe(traced(on))
      yield* pub.flush
      return { "msgs/s": rate(n, t) }
    }))

  return [
    {
      name: "trace-request",
      description:
        "request/reply, 10,000 sequential: untraced vs traced (a client span and a server span each, traceparent carried)",
      metrics: ["p50_ms", "p99_ms"],
      targets: [{ metric: "p50_ms", ratio: 1.25, text: "<= 1.25x" }],
      raw: request(false),
      effect: request(true)
    },
    {
      name: "trace-js-publish",
      description:
        "JetStream publish, 20,000 one by one: untraced vs traced (a producer span each, traceparent carried)",
      metrics: ["msgs/s"],
      targets: [{ metric: "msgs/s", ratio: 0.85, text: ">= 0.85" }],
      raw: jsPublish(false),
      effect: jsPublish(true)
    },
    {
      name: "trace-processor",
      description:
        "Processor, concurrency 1, 100,000 messages: untraced vs traced (each message with a traceparent, a consumer span each)",
      metrics: ["msgs/s"],
      targets: [{ metric: "msgs/s", ratio: 0.75, text: ">= 0.75" }],
      reps: 3,
      raw: processor(false),
      effect: processor(true)
    },
    {
      name: "trace-publish-all",
      description: "core publishAll, 500,000 x 128 B: untraced vs under a span (a traceparent header on every message)",
      metrics: ["msgs/s"],
      targets: [{ metric: "msgs/s", ratio: 0.5, text: ">= 0.50" }],
      raw: publishAll(false),
      effect: publishAll(true)
    }
  ]
}
