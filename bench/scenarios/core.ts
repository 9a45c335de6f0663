/**
 * Core NATS scenarios: publish, publish → subscribe (bytes and Schema), and
 * request/reply. The raw side is nats.js best practice (callback
 * subscriptions, publish loops flushed once); the effect side is how an
 * effect-nats user writes the same thing.
 */
import type { NatsConnection } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import { Effect, Exit, Fiber, Schema, Scope, Stream } from "effect"
import * as Net from "node:net"
import { NatsClient, Rpc, TypedSubject } from "../../src/index.ts"
import type { Context, Scenario } from "../harness.ts"
import { percentile, until } from "../harness.ts"

const payload128 = new Uint8Array(128).fill(97)

/** Raw connections and effect-nats clients, opened once for the whole run. */
export interface Clients {
  readonly rawPub: NatsConnection
  readonly rawSub: NatsConnection
  readonly pub: NatsClient.NatsClientShape
  readonly sub: NatsClient.NatsClientShape
  readonly close: () => Promise<void>
}

export const openClients = async (url: string): Promise<Clients> => {
  // the raw clients get effect-nats' connection default too (no stack captured per request):
  // the comparison measures the wrapper, not a setting
  const rawPub = await connect({ servers: url, name: "bench-raw-pub", noAsyncTraces: true })
  const rawSub = await connect({ servers: url, name: "bench-raw-sub", noAsyncTraces: true })
  const scope = Effect.runSync(Scope.make())
  const make = (name: string) =>
    Effect.runPromise(Scope.provide(scope)(NatsClient.make({ servers: url, name, logEvents: false })))
  const pub = await make("bench-effect-pub")
  const sub = await make("bench-effect-sub")
  return {
    rawPub,
    rawSub,
    pub,
    sub,
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await rawPub.close()
      await rawSub.close()
    }
  }
}

const rate = (n: number, startedMs: number) => n / ((performance.now() - startedMs) / 1000)

let subjectSeq = 0
const freshSubject = (prefix: string) => `bench.${prefix}.${subjectSeq++}`

/** Bare TCP: pre-encoded PUB frames written as fast as the server takes them, then a PING/PONG. */
const socketPublish = (url: string, n: number, size: number): Promise<number> =>
  new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url)
    const socket = Net.connect(Number(port), hostname)
    const frame = Buffer.concat([
      Buffer.from(`PUB bench.limit ${size}\r\n`),
      Buffer.alloc(size, 97),
      Buffer.from("\r\n")
    ])
    const batch = 512
    const block = Buffer.concat(Array.from({ length: batch }, () => frame))
    let started = 0
    let buffered = ""
    socket.on("error", reject)
    socket.on("data", (data) => {
      buffered += data.toString("latin1")
      if (started === 0 && buffered.includes("INFO")) {
        buffered = ""
        socket.write("CONNECT {\"verbose\":false,\"pedantic\":false}\r\n")
        started = performance.now()
        let sent = 0
        const write = () => {
          while (sent < n) {
            sent += batch
            if (!socket.write(block)) return void socket.once("drain", write)
          }
          socket.write("PING\r\n")
        }
        write()
      } else if (started !== 0 && buffered.includes("PONG")) {
        const r = rate(Math.ceil(n / batch) * batch, started)
        socket.destroy()
        resolve(r)
      }
    })
  })

/** Bare TCP: a subscriber counting MSG frames while a raw client publishes. */
const socketSubscribe = (url: string, pub: NatsConnection, n: number): Promise<number> =>
  new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url)
    const socket = Net.connect(Number(port), hostname)
    const subject = freshSubject("limit-sub")
    let count = 0
    let ready = false
    let started = 0
    let tail = ""
    socket.on("error", reject)
    socket.on("data", (data) => {
      const text = tail + data.toString("latin1")
      if (!ready) {
        if (text.includes("INFO")) {
          ready = true
          tail = ""
          socket.write(`CONNECT {"verbose":false,"pedantic":false}\r\nSUB ${subject} 1\r\nPING\r\n`)
        }
        return
      }
      if (started === 0) {
        if (!text.includes("PONG")) return
        tail = ""
        started = performance.now()
        void (async () => {
          for (let i = 0; i < n; i++) pub.publish(subject, payload128)
          await pub.flush()
        })()
        return
      }
      let i = 0
      while ((i = text.indexOf("MSG ", i)) !== -1) {
        count++
        i += 4
      }
      tail = text.slice(-3)
      if (count >= n) {
        const r = rate(count, started)
        socket.destroy()
        resolve(r)
      }
    })
  })

export const coreScenarios = (clients: Clients): ReadonlyArray<Scenario> => {
  const { pub, rawPub, rawSub, sub } = clients
  const n = (ctx: Context, full: number) => ctx.quick ? Math.max(1000, Math.floor(full / 10)) : full

  const corePublish: Scenario = {
    name: "core-publish",
    description: "core publish, 1M x 128 B (raw: publish loop + flush; effect: publishAll of a Stream)",
    metrics: ["msgs/s"],
    targets: [{ metric: "msgs/s", ratio: 0.95, text: ">= 0.95" }],
    raw: async (ctx) => {
      const count = n(ctx, 1_000_000)
      const t = performance.now()
      for (let i = 0; i < count; i++) rawPub.publish("bench.publish", payload128)
      await rawPub.flush()
      return { "msgs/s": rate(count, t) }
    },
    effect: (ctx) => {
      const count = n(ctx, 1_000_000)
      const messages = Stream.range(1, count).pipe(
        Stream.map(() => ({ subject: "bench.publish", payload: payload128 }))
      )
      return Effect.runPromise(Effect.gen(function*() {
        const t = performance.now()
        yield* pub.publishAll(messages)
        yield* pub.flush
        return { "msgs/s": rate(count, t) }
      }))
    },
    limit: async (ctx) => ({ "msgs/s": await socketPublish(ctx.url, n(ctx, 1_000_000), 128) })
  }

  const pubsubBytes: Scenario = {
    name: "core-pubsub-bytes",
    description: "publish -> subscribe, two connections, 500k x 128 B bytes (raw: callback subscription)",
    metrics: ["msgs/s"],
    targets: [{ metric: "msgs/s", ratio: 0.9, text: ">= 0.90" }],
    raw: async (ctx) => {
      const count = n(ctx, 500_000)
      const subject = freshSubject("pubsub")
      let received = 0
      const s = rawSub.subscribe(subject, { callback: () => void received++ })
      await rawSub.flush()
      const t = performance.now()
      for (let i = 0; i < count; i++) rawPub.publish(subject, payload128)
      await rawPub.flush()
      await until(() => received >= count)
      const r = rate(count, t)
      s.unsubscribe()
      return { "msgs/s": r }
    },
    effect: (ctx) => {
      const count = n(ctx, 500_000)
      const subject = freshSubject("pubsub")
      return Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const messages = yield* sub.subscribeScoped(subject, { bufferSize: 1_000_000 })
        let received = 0
        const t = performance.now()
        const consumer = yield* messages.pipe(
          Stream.take(count),
          Stream.runForEachArray((chunk) => Effect.sync(() => void (received += chunk.length))),
          Effect.forkScoped
        )
        for (let i = 0; i < count; i++) rawPub.publish(subject, payload128)
        yield* Effect.promise(() => rawPub.flush())
        yield* Fiber.join(consumer)
        return { "msgs/s": rate(count, t) }
      })))
    },
    limit: async (ctx) => ({ "msgs/s": await socketSubscribe(ctx.url, rawPub, n(ctx, 500_000)) })
  }

  const Reading = Schema.Struct({ id: Schema.String, n: Schema.Number })
  const encoder = new TextEncoder()
  const decoder = new TextDecoder()
  const jsonPayloads = Array.from({ length: 1000 }, (_, i) => encoder.encode(JSON.stringify({ id: `r-${i}`, n: i })))

  const pubsubSchema: Scenario = {
    name: "core-pubsub-schema",
    description: "publish -> subscribe, 200k JSON payloads decoded by a Schema (raw: JSON.parse + a hand check)",
    metrics: ["msgs/s"],
    targets: [{ metric: "msgs/s", ratio: 0.75, text: ">= 0.75" }],
    // its raw side is bimodal within a run (BENCHMARKS.md, fifteenth round): more pairs for a stable median
    reps: 9,
    raw: async (ctx) => {
      const count = n(ctx, 200_000)
      const subject = freshSubject("schema")
      let received = 0
      let sum = 0
      const s = rawSub.subscribe(subject, {
        callback: (_err, msg) => {
          const v: unknown = JSON.parse(decoder.decode(msg.data))
          if (
            typeof v === "object" && v !== null && "id" in v && "n" in v && typeof v.id === "string" &&
            typeof v.n === "number"
          ) {
            sum += v.n
          }
          received++
        }
      })
      await rawSub.flush()
      const t = performance.now()
      for (let i = 0; i < count; i++) rawPub.publish(subject, jsonPayloads[i % 1000])
      await rawPub.flush()
      await until(() => received >= count)
      const r = rate(count, t)
      s.unsubscribe()
      return { "msgs/s": sum >= 0 ? r : 0 }
    },
    effect: (ctx) => {
      const count = n(ctx, 200_000)
      const subject = freshSubject("schema")
      const typed = TypedSubject.make(subject, Reading)
      return Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const messages = yield* Effect.provideService(
          TypedSubject.subscribeScoped(typed, { bufferSize: 1_000_000 }),
          NatsClient.NatsClient,
          sub
        )
        let sum = 0
        const t = performance.now()
        const consumer = yield* messages.pipe(
          Stream.take(count),
          Stream.runForEachArray((chunk) =>
            Effect.sync(() => {
              for (const e of chunk) sum += e.value.n
            })
          ),
          Effect.forkScoped
        )
        for (let i = 0; i < count; i++) rawPub.publish(subject, jsonPayloads[i % 1000])
        yield* Effect.promise(() => rawPub.flush())
        yield* Fiber.join(consumer)
        return { "msgs/s": sum >= 0 ? rate(count, t) : 0 }
      })))
    }
  }

  const Price = Rpc.make("bench.rpc.typed", {
    request: Schema.Struct({ sku: Schema.String }),
    response: Schema.Struct({ sku: Schema.String, cents: Schema.Int })
  })

  const requestReply: Scenario = {
    name: "request-reply",
    description:
      "sequential request/reply, 10,000 calls (raw: request + JSON to a callback responder; effect: typed RPC)",
    metrics: ["p50_ms", "p99_ms"],
    // a p99 of one repetition moves with whatever else the machine did: more pairs for a stable median
    reps: 9,
    targets: [
      { metric: "p50_ms", ratio: 1.1, text: "<= 1.10x" },
      { metric: "p99_ms", ratio: 1.25, text: "<= 1.25x" }
    ],
    raw: async (ctx) => {
      const count = n(ctx, 10_000)
      const responder = rawSub.subscribe("bench.rpc.raw", {
        callback: (_err, msg) => {
          const req = JSON.parse(decoder.decode(msg.data)) as { sku: string }
          msg.respond(encoder.encode(JSON.stringify({ sku: req.sku, cents: 100 })))
        }
      })
      await rawSub.flush()
      const times: Array<number> = []
      for (let i = 0; i < count; i++) {
        const t = performance.now()
        const reply = await rawPub.request("bench.rpc.raw", encoder.encode(JSON.stringify({ sku: "a" })), {
          timeout: 5000
        })
        JSON.parse(decoder.decode(reply.data))
        times.push(performance.now() - t)
      }
      responder.unsubscribe()
      times.sort((a, b) => a - b)
      return { p50_ms: percentile(times, 0.5), p99_ms: percentile(times, 0.99) }
    },
    effect: (ctx) => {
      const count = n(ctx, 10_000)
      return Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        yield* Effect.provideService(
          Rpc.serve(Price, ({ sku }) => Effect.succeed({ sku, cents: 100 })),
          NatsClient.NatsClient,
          sub
        )
        const times: Array<number> = []
        const call = Effect.provideService(Rpc.call(Price, { sku: "a" }), NatsClient.NatsClient, pub)
        for (let i = 0; i < count; i++) {
          const t = performance.now()
          yield* call
          times.push(performance.now() - t)
        }
        times.sort((a, b) => a - b)
        return { p50_ms: percentile(times, 0.5), p99_ms: percentile(times, 0.99) }
      })))
    }
  }

  return [corePublish, pubsubBytes, pubsubSchema, requestReply]
}
