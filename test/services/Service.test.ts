import { assert, describe, layer } from "@effect/vitest"
import type { NatsConnection } from "@nats-io/nats-core"
import { Svcm } from "@nats-io/services"
import { connect } from "@nats-io/transport-node"
import { Deferred, Effect, Exit, Fiber, Schema, Scope, Stream } from "effect"
import { LocalNats, NatsClient, NatsServer, Rpc, Service, ServiceClient } from "../../src/index.ts"

class UnknownSku extends Schema.TaggedError<UnknownSku>()("UnknownSku", { sku: Schema.String }) {}

const PriceLookup = Rpc.make("svc.pricing.lookup", {
  request: Schema.Struct({ sku: Schema.String }),
  response: Schema.Struct({ sku: Schema.String, cents: Schema.Int }),
  error: UnknownSku
})

const lookup = ({ sku }: { readonly sku: string }) =>
  sku === "die"
    ? Effect.die(new Error("kaput"))
    : sku === "apple"
    ? Effect.succeed({ sku, cents: 50 })
    : Effect.fail(new UnknownSku({ sku }))

const pricing = (name = "pricing") =>
  Service.make({
    name,
    version: "1.2.3",
    description: "prices by sku",
    metadata: { team: "shop" },
    endpoints: [
      Service.rpc("lookup", PriceLookup, lookup, { concurrency: 4, metadata: { schema: "v1" } }),
      ...Service.group("svc.admin", [Service.endpoint("echo", (msg) => Effect.succeed(msg.data))])
    ]
  })

const rawConnection = Effect.gen(function*() {
  const server = yield* NatsServer.NatsServer
  return yield* Effect.acquireRelease(
    Effect.promise(() => connect({ servers: server.url })),
    (nc) => Effect.promise(() => nc.close())
  )
})

const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), (c) => Array.from(c))

describe("Service", () => {
  layer(LocalNats.layer({ client: { logEvents: false } }), { excludeTestServices: true })("on a real server", (it) => {
    it.effect("endpoints answer; stats count every request, error and the last error exactly", () =>
      Effect.scoped(Effect.gen(function*() {
        const service = yield* pricing("exact")
        const nats = yield* NatsClient.NatsClient
        for (let i = 0; i < 3; i++) {
          assert.deepStrictEqual(yield* Rpc.call(PriceLookup, { sku: "apple" }), { sku: "apple", cents: 50 })
        }
        assert.instanceOf(yield* Effect.flip(Rpc.call(PriceLookup, { sku: "kiwi" })), UnknownSku)
        const died = yield* Effect.flip(Rpc.call(PriceLookup, { sku: "die" }))
        assert.strictEqual(died._tag, "NatsError")
        assert.strictEqual((yield* nats.request("svc.admin.echo", "hi")).string(), "hi")
        const stats = yield* service.stats
        const [lookupStats, echoStats] = stats.endpoints
        assert.strictEqual(lookupStats?.numRequests, 5)
        assert.strictEqual(lookupStats?.numErrors, 2)
        assert.strictEqual(lookupStats?.lastError, "kaput")
        assert.isTrue((lookupStats?.processingTime ?? 0) > 0)
        assert.strictEqual(lookupStats?.averageProcessingTime, Math.round((lookupStats?.processingTime ?? 0) / 5))
        assert.deepStrictEqual([echoStats?.subject, echoStats?.numRequests, echoStats?.numErrors], [
          "svc.admin.echo",
          1,
          0
        ])
        // the typed error's message is the last error when it comes last
        yield* Effect.flip(Rpc.call(PriceLookup, { sku: "plum" }))
        assert.strictEqual((yield* service.stats).endpoints[0]?.lastError, "UnknownSku")
        const resetAt = new Date().toISOString()
        yield* service.reset
        const after = yield* service.stats
        assert.strictEqual(after.endpoints[0]?.numRequests, 0)
        assert.isTrue(after.started >= resetAt, "the counters start again from the reset")
      })))

    it.effect("discovery: every instance, one service's, one instance's; info lists the endpoints", () =>
      Effect.scoped(Effect.gen(function*() {
        const a = yield* pricing("disco")
        const b = yield* pricing("disco")
        yield* pricing("other")
        const fast = { stall: "300 millis" } as const
        const all = yield* collect(ServiceClient.ping({ name: "disco", ...fast }))
        assert.deepStrictEqual(all.map((p) => p.id).sort(), [a.id, b.id].sort())
        assert.deepStrictEqual(all[0]?.metadata, { team: "shop" })
        const one = yield* collect(ServiceClient.info({ name: "disco", id: b.id, ...fast }))
        assert.strictEqual(one.length, 1)
        assert.deepStrictEqual(one[0], b.info)
        assert.deepStrictEqual(one[0]?.endpoints.map((e) => [e.name, e.subject, e.queueGroup]), [
          ["lookup", "svc.pricing.lookup", "q"],
          ["echo", "svc.admin.echo", "q"]
        ])
        const everyone = yield* collect(ServiceClient.ping(fast))
        assert.isTrue(everyone.filter((p) => p.name === "other").length >= 1)
        const stats = yield* collect(ServiceClient.stats({ name: "disco", id: a.id, ...fast }))
        assert.deepStrictEqual(stats[0]?.endpoints.map((e) => e.numRequests), [0, 0])
      })))

    it.effect("the queue group shares the requests over the instances; the stats add up", () =>
      Effect.scoped(Effect.gen(function*() {
        const instances = [yield* pricing("shared"), yield* pricing("shared"), yield* pricing("shared")]
        yield* Effect.forEach(Array.from({ length: 60 }), () => Rpc.call(PriceLookup, { sku: "apple" }), {
          concurrency: 8
        })
        const counts = yield* Effect.forEach(
          instances,
          (s) => Effect.map(s.stats, (st) => st.endpoints[0]?.numRequests ?? 0)
        )
        assert.strictEqual(counts.reduce((x, y) => x + y, 0), 60)
        assert.isTrue(counts.filter((n) => n > 0).length >= 2, `spread: ${counts.join(", ")}`)
      })))

    it.effect("a @nats-io/services client discovers ours, and we discover (and call) a @nats-io/services service", () =>
      Effect.scoped(Effect.gen(function*() {
        const nc: NatsConnection = yield* rawConnection
        const ours = yield* pricing("interop-ours")
        const theirClient = new Svcm(nc).client()
        const pings = yield* Effect.promise(async () => {
          const out: Array<{ name: string; id: string }> = []
          for await (const p of await theirClient.ping("interop-ours")) out.push(p)
          return out
        })
        assert.deepStrictEqual(pings.map((p) => p.id), [ours.id])
        const theirInfo = yield* Effect.promise(async () => {
          for await (const i of await theirClient.info("interop-ours", ours.id)) return i
          return undefined
        })
        assert.deepStrictEqual(theirInfo?.endpoints.map((e) => e.subject), ["svc.pricing.lookup", "svc.admin.echo"])
        yield* Rpc.call(PriceLookup, { sku: "apple" })
        const theirStats = yield* Effect.promise(async () => {
          for await (const s of await theirClient.stats("interop-ours", ours.id)) return s
          return undefined
        })
        assert.strictEqual(theirStats?.endpoints?.[0]?.num_requests, 1)

        // theirs, found and called by ours
        const theirs = yield* Effect.promise(() =>
          new Svcm(nc).add({ name: "interop-theirs", version: "0.1.0", metadata: { lang: "js" } })
        )
        yield* Effect.addFinalizer(() => Effect.promise(() => theirs.stop()))
        theirs.addGroup("svc.js").addEndpoint("upper", (_err, msg) => {
          const text = msg.string()
          if (text === "") msg.respondError(400, "empty")
          else msg.respond(text.toUpperCase())
        })
        yield* Effect.promise(() => nc.flush())
        const found = yield* collect(ServiceClient.info({ name: "interop-theirs", stall: "300 millis" }))
        assert.strictEqual(found[0]?.id, theirs.info().id)
        assert.deepStrictEqual(found[0]?.metadata, { lang: "js" })
        assert.deepStrictEqual(found[0]?.endpoints.map((e) => [e.name, e.subject, e.queueGroup]), [[
          "upper",
          "svc.js.upper",
          "q"
        ]])
        const nats = yield* NatsClient.NatsClient
        assert.strictEqual((yield* nats.request("svc.js.upper", "abc")).string(), "ABC")
        const refused = yield* Effect.flip(nats.request("svc.js.upper", ""))
        assert.strictEqual(refused.reason._tag, "ServiceError")
        const theirStats2 = yield* collect(ServiceClient.stats({ name: "interop-theirs", stall: "300 millis" }))
        assert.strictEqual(theirStats2[0]?.endpoints[0]?.numRequests, 2)
      })))

    it.effect("stopping: intake stops, the request in flight is answered, then the instance leaves discovery", () =>
      Effect.gen(function*() {
        const started = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const scope = yield* Scope.make()
        const SlowEcho = Rpc.make("svc.slow", { request: Schema.String, response: Schema.String })
        yield* Service.make({
          name: "stopping",
          version: "1.0.0",
          endpoints: [
            Service.rpc(
              "slow",
              SlowEcho,
              (s) => Deferred.succeed(started, undefined).pipe(Effect.andThen(Deferred.await(release)), Effect.as(s))
            )
          ]
        }).pipe(Scope.provide(scope))
        const call = yield* Effect.forkChild(Rpc.call(SlowEcho, "in flight", { timeout: "10 seconds" }))
        yield* Deferred.await(started)
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        // still discoverable while it finishes
        assert.strictEqual((yield* collect(ServiceClient.ping({ name: "stopping", stall: "200 millis" }))).length, 1)
        // a new request is not taken
        const refused = yield* Effect.flip(Rpc.call(SlowEcho, "late", { timeout: "500 millis" }))
        assert.strictEqual(refused._tag, "NatsError")
        yield* Deferred.succeed(release, undefined)
        assert.strictEqual(yield* Fiber.join(call), "in flight")
        yield* Fiber.join(closing)
        assert.strictEqual((yield* collect(ServiceClient.ping({ name: "stopping", maxWait: "300 millis" }))).length, 0)
      }))

    it.effect("bad names, versions and endpoints are InvalidArgument before anything is registered", () =>
      Effect.scoped(Effect.gen(function*() {
        const echo = Service.endpoint("echo", () => Effect.succeed("x"))
        for (
          const options of [
            { name: "bad name", version: "1.0.0", endpoints: [echo] },
            { name: "ok", version: "1.0", endpoints: [echo] },
            { name: "ok", version: "1.0.0", endpoints: [] },
            { name: "ok", version: "1.0.0", endpoints: [echo, echo] },
            { name: "ok", version: "1.0.0", endpoints: [Service.endpoint("a.b", () => Effect.void)] }
          ]
        ) {
          const error = yield* Effect.flip(Service.make(options))
          assert.strictEqual(error.reason._tag, "InvalidArgument", JSON.stringify(options.name))
        }
        assert.strictEqual((yield* collect(ServiceClient.ping({ name: "ok", maxWait: "200 millis" }))).length, 0)
      })))
  })
})
