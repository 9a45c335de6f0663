/**
 * A focused consume tool: where does the gap between raw `consume()` + ack and
 * effect-nats' `Consumer.consume` / `Processor` come from? Variants alternate,
 * each on a fresh durable consumer of one pre-filled memory stream.
 *
 *   npx node bench/consume-variants.ts [count] [reps] [variant,variant...]
 */
import type { JsMsg } from "@nats-io/jetstream"
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Deferred, Effect, Exit, Queue, Scope, Stream } from "effect"
import {
  Codec,
  Consumer,
  JetStream,
  JetStreamManager as Jsm,
  JsEnvelope,
  NatsClient,
  NatsServer,
  Processor
} from "../src/index.ts"
import { median } from "./harness.ts"

const count = Number(process.argv[2] ?? 50_000)
const reps = Number(process.argv[3] ?? 3)
const pick = process.argv[4]?.split(",")

const scope = Effect.runSync(Scope.make())
const server = await Effect.runPromise(Scope.provide(scope)(NatsServer.make({})))
const raw = await connect({ servers: server.url, noAsyncTraces: true })
const client = await Effect.runPromise(
  Scope.provide(scope)(NatsClient.make({ servers: server.url, logEvents: false }))
)
const ours = await Effect.runPromise(Effect.provideService(JetStream.make(), NatsClient.NatsClient, client))
const oursJsm = await Effect.runPromise(Effect.provideService(Jsm.make(), NatsClient.NatsClient, client))
const jsm = await jetstreamManager(raw)
const js = jetstream(raw)
await jsm.streams.add({ name: "CV", subjects: ["cv"], storage: "memory" })
for (let i = 0; i < count; i += 500) {
  await Promise.all(Array.from({ length: Math.min(500, count - i) }, () => js.publish("cv", new Uint8Array(128))))
}

let seq = 0
const fresh = async () => {
  const name = `cv_${seq++}`
  await jsm.consumers.add("CV", { durable_name: name, ack_policy: "explicit" })
  return name
}

const rate = (t: number) => count / ((performance.now() - t) / 1000)

const effectSide = async (f: (c: Consumer.ConsumerShape) => Effect.Effect<number, unknown, Scope.Scope>) => {
  const name = await fresh()
  const s = Effect.runSync(Scope.make())
  try {
    return await Effect.runPromise(
      Consumer.durable({ stream: "CV", durable: name }).pipe(
        Effect.provideService(NatsClient.NatsClient, client),
        Effect.provideService(Jsm.JetStreamManager, oursJsm),
        Effect.flatMap((c) => Effect.scoped(f(c))),
        Scope.provide(s)
      )
    )
  } finally {
    await Effect.runPromise(Scope.close(s, Exit.void))
    await jsm.consumers.delete("CV", name)
  }
}

const processor = (concurrency: number, prefetch?: number) =>
  effectSide((consumer) =>
    Effect.gen(function*() {
      let handled = 0
      const done = yield* Deferred.make<void>()
      const t = performance.now()
      yield* Processor.make({
        consumer,
        codec: Codec.bytes,
        concurrency,
        ...(prefetch === undefined ? {} : { prefetch }),
        handler: () => ++handled === count ? Deferred.succeed(done, undefined) : Effect.void
      }).pipe(
        Effect.provideService(JetStream.JetStream, ours),
        Effect.provideService(Jsm.JetStreamManager, oursJsm),
        Effect.provideService(NatsClient.NatsClient, client)
      )
      yield* Deferred.await(done)
      yield* client.flush
      return rate(t)
    })
  )

const variants: Record<string, () => Promise<number>> = {
  "raw callback": async () => {
    const name = await fresh()
    const c = await js.consumers.get("CV", name)
    let n = 0
    let resolve = () => {}
    const done = new Promise<void>((r) => resolve = r)
    const t = performance.now()
    const messages = await c.consume({
      callback: (m: JsMsg) => {
        m.ack()
        if (++n === count) resolve()
      }
    })
    await done
    await raw.flush()
    const r = rate(t)
    await messages.close()
    await jsm.consumers.delete("CV", name)
    return r
  },
  "raw iterator": async () => {
    const name = await fresh()
    const c = await js.consumers.get("CV", name)
    let n = 0
    const t = performance.now()
    const messages = await c.consume()
    for await (const m of messages) {
      m.ack()
      if (++n === count) break
    }
    await raw.flush()
    const r = rate(t)
    await jsm.consumers.delete("CV", name)
    return r
  },
  "effect consume runForEach": () =>
    effectSide((c) =>
      Effect.gen(function*() {
        const t = performance.now()
        yield* c.consume().pipe(Stream.take(count), Stream.runForEach((e) => e.ack))
        yield* client.flush
        return rate(t)
      })
    ),
  "effect consume bufferSize 1": () =>
    effectSide((c) =>
      Effect.gen(function*() {
        const t = performance.now()
        yield* c.consume({ bufferSize: 1 }).pipe(Stream.take(count), Stream.runForEach((e) => e.ack))
        yield* client.flush
        return rate(t)
      })
    ),
  "effect consume prefetch 16 bufferSize 1": () =>
    effectSide((c) =>
      Effect.gen(function*() {
        const t = performance.now()
        yield* c.consume({ maxMessages: 16, bufferSize: 1 }).pipe(Stream.take(count), Stream.runForEach((e) => e.ack))
        yield* client.flush
        return rate(t)
      })
    ),
  // A prototype of a proposed fix (not the library): nats.js' callback consume offered into an Effect queue,
  // read as a Stream; no promise per message, the messages of one socket read reach the Stream as one chunk.
  // Memory stays bounded by the consumer's max_ack_pending (explicit acks), not by the queue.
  "prototype callback bridge": async () => {
    const name = await fresh()
    const c = await js.consumers.get("CV", name)
    return Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const queue = yield* Queue.unbounded<JsMsg>()
      const messages = yield* Effect.acquireRelease(
        Effect.promise(() => c.consume({ callback: (m: JsMsg) => void Queue.offerUnsafe(queue, m) })),
        (m) => Effect.promise(() => m.close().then(() => jsm.consumers.delete("CV", name)))
      )
      const t = performance.now()
      yield* Stream.fromQueue(queue).pipe(
        Stream.map((m) => JsEnvelope.make(m.data, m)),
        Stream.take(count),
        Stream.runForEach((e) => e.ack)
      )
      yield* Effect.promise(() => raw.flush())
      return messages === undefined ? 0 : rate(t)
    })))
  },
  "processor c1": () => processor(1),
  "processor c1 prefetch 100": () => processor(1, 100),
  "processor c16": () => processor(16),
  "processor c16 prefetch 100": () => processor(16, 100)
}

const chosen = Object.entries(variants).filter(([name]) => pick === undefined || pick.includes(name))
const results = new Map<string, Array<number>>()
for (let rep = 0; rep < reps; rep++) {
  for (const [name, run] of rep % 2 === 0 ? chosen : [...chosen].reverse()) {
    const r = await run()
    results.set(name, [...(results.get(name) ?? []), r])
  }
}
for (const [name, rates] of results) {
  console.log(
    `${name.padEnd(42)} median ${Math.round(median(rates)).toString().padStart(7)} msgs/s  (${
      rates.map(Math.round).join(", ")
    })`
  )
}
await raw.close()
await Effect.runPromise(Scope.close(scope, Exit.void))
