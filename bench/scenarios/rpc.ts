/**
 * Effect RPC over NATS (issue 15), in the same run as the rest:
 * - against raw nats.js request/reply (the same JSON request and reply,
 *   a callback responder), sequential latency and throughput with 16 calls
 *   in flight;
 * - against Effect RPC over its own socket transport (TCP on loopback, the
 *   same group, handlers and NDJSON serialization, which a byte stream needs
 *   for framing; the NATS side uses it too): what the broker hop and
 *   our protocol cost over a direct connection.
 * `request-reply` (core.ts) is our typed `Rpc.call` against the same raw
 * baseline: read the three together.
 */
import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import type { Scope } from "effect"
import { Effect, Layer, Schema } from "effect"
import * as Rpc from "effect/rpc/Rpc"
import * as RpcClient from "effect/rpc/RpcClient"
import type { RpcClientError } from "effect/rpc/RpcClientError"
import * as RpcGroup from "effect/rpc/RpcGroup"
import * as RpcSerialization from "effect/rpc/RpcSerialization"
import * as RpcServer from "effect/rpc/RpcServer"
import * as SocketServer from "effect/socket/SocketServer"
import { NatsClient, NatsRpc } from "../../src/index.ts"
import type { Context, Measurement, Scenario } from "../harness.ts"
import { percentile } from "../harness.ts"
import type { Clients } from "./core.ts"

const Pricing = RpcGroup.make(
  Rpc.make("Price", {
    payload: { sku: Schema.String },
    success: Schema.Struct({ sku: Schema.String, cents: Schema.Int })
  })
)

const PricingHandlers = Pricing.toLayer({ Price: ({ sku }) => Effect.succeed({ sku, cents: 100 }) })

type PricingClient = RpcClient.RpcClient<RpcGroup.Rpcs<typeof Pricing>, RpcClientError>

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const CONCURRENCY = 16
let seq = 0

/** Sequential calls: p50 and p99 of each. */
const sequential = (count: number, call: () => Promise<unknown>) => async (): Promise<Measurement> => {
  const times: Array<number> = []
  for (let i = 0; i < count; i++) {
    const t = performance.now()
    await call()
    times.push(performance.now() - t)
  }
  times.sort((a, b) => a - b)
  return { p50_ms: percentile(times, 0.5), p99_ms: percentile(times, 0.99) }
}

/** `count` calls, `CONCURRENCY` in flight: calls per second. */
const concurrent = (count: number, call: () => Promise<unknown>) => async (): Promise<Measurement> => {
  let next = 0
  const t = performance.now()
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next++ < count) await call()
  }))
  return { "msgs/s": count / ((performance.now() - t) / 1000) }
}

export const rpcScenarios = (clients: Clients): ReadonlyArray<Scenario> => {
  const { pub, rawPub, rawSub, sub } = clients
  const count = (ctx: Context, full: number) => ctx.quick ? Math.floor(full / 10) : full

  /** Raw nats.js: a callback responder, requests from the other connection. */
  const raw = (measure: (call: () => Promise<unknown>) => () => Promise<Measurement>) => async () => {
    const subject = `bench.effectrpc.raw.${seq++}`
    const responder = rawSub.subscribe(subject, {
      callback: (_err, msg) => {
        const req = JSON.parse(decoder.decode(msg.data)) as { sku: string }
        msg.respond(encoder.encode(JSON.stringify({ sku: req.sku, cents: 100 })))
      }
    })
    await rawSub.flush()
    try {
      return await measure(async () => {
        const reply = await rawPub.request(subject, encoder.encode(JSON.stringify({ sku: "a" })), { timeout: 5000 })
        return JSON.parse(decoder.decode(reply.data))
      })()
    } finally {
      responder.unsubscribe()
    }
  }

  /** Runs `measure` with a client of `Pricing` over `transport` (server and client built first, outside the timing). */
  const withClient = (
    transport: Effect.Effect<PricingClient, unknown, Scope.Scope>,
    measure: (call: () => Promise<unknown>) => () => Promise<Measurement>
  ) =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const client = yield* transport
      const context = yield* Effect.context<never>()
      const call = () => Effect.runPromiseWith(context)(client.Price({ sku: "a" }))
      return yield* Effect.promise(measure(call))
    })))

  const overNats = Effect.gen(function*() {
    const subject = `bench.effectrpc.nats.${seq++}`
    yield* Layer.build(
      NatsRpc.layerServer(Pricing, { subject }).pipe(
        Layer.provide([PricingHandlers, RpcSerialization.layerNdjson, Layer.succeed(NatsClient.NatsClient, sub)])
      )
    )
    const context = yield* Layer.build(
      NatsRpc.layerProtocolClient({ subject }).pipe(
        Layer.provide([RpcSerialization.layerNdjson, Layer.succeed(NatsClient.NatsClient, pub)])
      )
    )
    return yield* RpcClient.make(Pricing).pipe(Effect.provideContext(context))
  })

  const overSocket = Effect.gen(function*() {
    const server = yield* Layer.build(
      RpcServer.layer(Pricing).pipe(
        Layer.provide(PricingHandlers),
        Layer.provideMerge(RpcServer.layerProtocolSocketServer),
        Layer.provideMerge(NodeSocketServer.layer({ port: 0, host: "127.0.0.1" })),
        Layer.provide(RpcSerialization.layerNdjson)
      )
    )
    const address = (server.mapUnsafe.get(SocketServer.SocketServer.key) as SocketServer.SocketServer["Service"])
      .address as { readonly port: number }
    const context = yield* Layer.build(
      RpcClient.layerProtocolSocket().pipe(
        Layer.provide([NodeSocket.layerNet({ host: "127.0.0.1", port: address.port }), RpcSerialization.layerNdjson])
      )
    )
    return yield* RpcClient.make(Pricing).pipe(Effect.provideContext(context))
  })

  return [
    {
      name: "effect-rpc-nats",
      description:
        "Effect RPC over NATS, sequential unary calls, 5,000 (raw: nats.js request + JSON to a callback responder)",
      metrics: ["p50_ms", "p99_ms"],
      targets: [{ metric: "p50_ms", ratio: 1.5, text: "<= 1.50x" }],
      raw: (ctx) => raw((call) => sequential(count(ctx, 5_000), call))(),
      effect: (ctx) => withClient(overNats, (call) => sequential(count(ctx, 5_000), call))
    },
    {
      name: "effect-rpc-nats-c16",
      description: "Effect RPC over NATS, 20,000 unary calls, 16 in flight (raw: nats.js requests, 16 in flight)",
      metrics: ["msgs/s"],
      targets: [{ metric: "msgs/s", ratio: 0.6, text: ">= 0.60" }],
      raw: (ctx) => raw((call) => concurrent(count(ctx, 20_000), call))(),
      effect: (ctx) => withClient(overNats, (call) => concurrent(count(ctx, 20_000), call))
    },
    {
      name: "effect-rpc-vs-socket",
      description:
        "Effect RPC, sequential unary calls, 5,000: over NATS (effect) vs over its socket transport on loopback (raw)",
      metrics: ["p50_ms", "p99_ms"],
      // no target: a broker's round trip against none (raw nats.js' own request is ~6x the socket's)
      targets: [],
      raw: (ctx) => withClient(overSocket, (call) => sequential(count(ctx, 5_000), call)),
      effect: (ctx) => withClient(overNats, (call) => sequential(count(ctx, 5_000), call))
    },
    {
      name: "effect-rpc-vs-socket-c16",
      description:
        "Effect RPC, 20,000 unary calls, 16 in flight: over NATS (effect) vs over its socket transport (raw)",
      metrics: ["msgs/s"],
      targets: [],
      raw: (ctx) => withClient(overSocket, (call) => concurrent(count(ctx, 20_000), call)),
      effect: (ctx) => withClient(overNats, (call) => concurrent(count(ctx, 20_000), call))
    }
  ]
}
