/**
 * Effect RPC over NATS, on a real server: an `RpcGroup` served by three
 * instances (each on its own connection, as three processes would be),
 * called by a client on a fourth.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Cause, Deferred, Effect, Exit, Fiber, Layer, Schedule, Scope, Stream, type Tracer } from "effect"
import * as RpcClient from "effect/rpc/RpcClient"
import * as RpcSerialization from "effect/rpc/RpcSerialization"
import * as RpcServer from "effect/rpc/RpcServer"
import { memoryTracer } from "../../examples/trace-order.ts"
import { LocalNats, NatsClient, NatsRpc, NatsServer } from "../../src/index.ts"
import * as ServerProtocol from "../../src/internal/rpcServerProtocol.ts"
import * as FaultProxy from "../support/faultProxy.ts"
import { AuthClient, handlers, NotFound, Observed, User, Users } from "./fixtures.ts"

const heartbeat = "200 millis"
let subjects = 0

/** An instance serving `Users` on `subject`, on a connection of its own (closed with `scope`). */
const instance = (
  name: string,
  subject: string,
  serialization: Layer.Layer<RpcSerialization.RpcSerialization> = RpcSerialization.layerJson,
  tracer?: Tracer.Tracer
) =>
  Effect.gen(function*() {
    const server = yield* NatsServer.NatsServer
    const scope = yield* Scope.make()
    const nats = yield* NatsClient.make({ servers: server.urls, logEvents: false }).pipe(Scope.provide(scope))
    const observed = new Observed()
    yield* Layer.buildWithScope(
      NatsRpc.layerServer(Users, { subject, heartbeat, gracePeriod: "5 seconds" }).pipe(
        Layer.provide([handlers(name, observed), serialization, Layer.succeed(NatsClient.NatsClient, nats)])
      ),
      scope
    ).pipe(tracer === undefined ? (e) => e : Effect.withTracer(tracer))
    return { name, nats, scope, observed }
  })

/** A client of `subject` on the test's connection (for the current scope). */
const client = (
  subject: string,
  serialization: Layer.Layer<RpcSerialization.RpcSerialization> = RpcSerialization.layerJson
) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(Layer.mergeAll(
      NatsRpc.layerProtocolClient({ subject, heartbeat }).pipe(Layer.provide(serialization)),
      AuthClient
    ))
    return yield* RpcClient.make(Users).pipe(Effect.provideContext(context))
  })

const three = Effect.gen(function*() {
  const subject = `rpc.users.${subjects++}`
  const instances = yield* Effect.forEach(["a", "b", "c"], (name) => instance(name, subject))
  yield* Effect.addFinalizer(() => Effect.forEach(instances, (i) => Scope.close(i.scope, Exit.void), { discard: true }))
  return { subject, instances, client: yield* client(subject) }
})

describe("NatsRpc", () => {
  layer(LocalNats.layer({ client: { logEvents: false } }), { excludeTestServices: true })("on a real server", (it) => {
    it.effect("unary calls, typed errors, defects and middleware work as on Effect's own transports", () =>
      Effect.scoped(Effect.gen(function*() {
        const { client } = yield* three
        assert.deepStrictEqual(yield* client.GetUser({ id: "u1" }), new User({ id: "u1", name: "tester" }))
        const error = yield* Effect.flip(client.GetUser({ id: "missing" }))
        assert.instanceOf(error, NotFound)
        const died = yield* Effect.exit(client.Boom())
        assert.isTrue(Exit.isFailure(died) && Cause.hasDies(died.cause), String(died))
        // the instance goes on after a defect
        assert.deepStrictEqual(yield* client.GetUser({ id: "u2" }), new User({ id: "u2", name: "tester" }))
      })))

    it.effect("a streaming call delivers every element in order, with backpressure", () =>
      Effect.scoped(Effect.gen(function*() {
        const { client, instances } = yield* three
        const all = yield* Stream.runCollect(client.CountTo({ n: 200, delayMs: 0 }))
        assert.deepStrictEqual(Array.from(all), Array.from({ length: 200 }, (_, i) => i + 1))
        // an endless stream read slowly: the server runs only a little ahead of the reader
        const read = yield* client.Ticks().pipe(
          Stream.tap(() => Effect.sleep(50)),
          Stream.take(6),
          Stream.runCollect
        )
        assert.deepStrictEqual(Array.from(read), [0, 1, 2, 3, 4, 5])
        const emitted = instances.reduce((n, i) => n + i.observed.emitted, 0) - 200
        assert.isTrue(emitted <= 6 + 64, `the server emitted ${emitted} ahead of a reader of 6`)
      })))

    it.effect("interrupting the client interrupts the handler: a stream ended early, a call abandoned", () =>
      Effect.scoped(Effect.gen(function*() {
        const { client, instances } = yield* three
        yield* client.Ticks().pipe(Stream.take(3), Stream.runDrain)
        yield* Effect.raceAll(instances.map((i) => Deferred.await(i.observed.interrupted))).pipe(
          Effect.timeout("3 seconds")
        )
        const { client: other, instances: others } = yield* three
        const call = yield* Effect.forkChild(other.Never())
        yield* Effect.raceAll(others.map((i) => Deferred.await(i.observed.started))).pipe(Effect.timeout("3 seconds"))
        yield* Fiber.interrupt(call)
        yield* Effect.raceAll(others.map((i) => Deferred.await(i.observed.interrupted))).pipe(
          Effect.timeout("3 seconds")
        )
      })))

    it.effect("a slow reader of a stream is not taken for dead: heartbeats are answered while it reads", () =>
      Effect.scoped(Effect.gen(function*() {
        const { client } = yield* three
        // each element read takes longer than the three heartbeats after which a silent side is given up
        const slow = yield* client.Ticks().pipe(
          Stream.tap(() => Effect.sleep(700)),
          Stream.take(3),
          Stream.runCollect,
          Effect.forkChild
        )
        assert.strictEqual(typeof (yield* client.WhoServes()), "string")
        assert.deepStrictEqual(Array.from(yield* Fiber.join(slow)), [0, 1, 2])
      })))

    it.effect("a response too large to send fails its call with a defect; the instance serves on", () =>
      Effect.scoped(Effect.gen(function*() {
        const { client } = yield* three
        const started = Date.now()
        const exit = yield* Effect.exit(Stream.runCollect(client.Big({ bytes: 2 * 1024 * 1024 })))
        assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause), String(exit))
        assert.isTrue(Date.now() - started < 1_000, "at once, not by a heartbeat timeout")
        assert.strictEqual(typeof (yield* client.WhoServes()), "string")
      })))

    it.effect("the queue group shares calls over the instances", () =>
      Effect.scoped(Effect.gen(function*() {
        const { client } = yield* three
        const served = yield* Effect.forEach(Array.from({ length: 60 }), () => client.WhoServes(), { concurrency: 6 })
        assert.strictEqual(served.length, 60)
        assert.isTrue(new Set(served).size >= 2, `served by ${[...new Set(served)].join(", ")}`)
      })))

    it.effect("an instance killed mid-stream fails the client's stream with RpcClientError, promptly; others serve on", () =>
      Effect.scoped(Effect.gen(function*() {
        const { client, instances } = yield* three
        const received: Array<number> = []
        const streaming = yield* client.CountTo({ n: 10_000, delayMs: 10 }).pipe(
          Stream.runForEach((n) => Effect.sync(() => received.push(n))),
          Effect.flip,
          Effect.forkChild
        )
        const serving = yield* Effect.raceAll(
          instances.map((i) => Effect.as(Deferred.await(i.observed.started), i))
        ).pipe(Effect.timeout("3 seconds"))
        yield* Effect.sleep(100).pipe(Effect.repeat({ until: () => received.length >= 3 }))
        // the process dies: its connection closes without draining anything
        const killedAt = Date.now()
        yield* Effect.promise(() => serving.nats.core.connection.close())
        const error = yield* Fiber.join(streaming)
        const after = Date.now() - killedAt
        assert.strictEqual(error._tag, "RpcClientError")
        assert.isTrue(after < 2_000, `failed ${after} ms after the kill`)
        assert.deepStrictEqual(received, Array.from({ length: received.length }, (_, i) => i + 1))
        // new calls go to the living instances
        const names = yield* Effect.forEach(Array.from({ length: 10 }), () => client.WhoServes())
        assert.isFalse(names.includes(serving.name))
      })))

    it.effect("a client that dies has its handlers interrupted by the instance", () =>
      Effect.scoped(Effect.gen(function*() {
        const subject = `rpc.users.${subjects++}`
        const served = yield* instance("solo", subject)
        yield* Effect.addFinalizer(() => Scope.close(served.scope, Exit.void))
        const server = yield* NatsServer.NatsServer
        const clientScope = yield* Scope.make()
        const nats = yield* NatsClient.make({ servers: server.urls, logEvents: false }).pipe(Scope.provide(clientScope))
        const doomed = yield* client(subject).pipe(
          Effect.provideService(NatsClient.NatsClient, nats),
          Scope.provide(clientScope)
        )
        yield* Effect.forkDetach(Stream.runDrain(doomed.Ticks()))
        yield* Deferred.await(served.observed.started).pipe(Effect.timeout("3 seconds"))
        yield* Effect.promise(() => nats.core.connection.close())
        yield* Deferred.await(served.observed.interrupted).pipe(Effect.timeout("3 seconds"))
        yield* Scope.close(clientScope, Exit.void)
      })))

    it.effect("a response lost while the client was away fails its call with RpcClientError, not never", () =>
      Effect.scoped(Effect.gen(function*() {
        const subject = `rpc.users.${subjects++}`
        const served = yield* instance("gated", subject)
        yield* Effect.addFinalizer(() => Scope.close(served.scope, Exit.void))
        const server = yield* NatsServer.NatsServer
        const proxy = yield* FaultProxy.make(server.url)
        const nats = yield* NatsClient.make({
          servers: proxy.url,
          reconnectSchedule: Schedule.spaced("50 millis"),
          logEvents: false
        })
        const c = yield* client(subject).pipe(Effect.provideService(NatsClient.NatsClient, nats))
        const call = yield* Effect.forkChild(Effect.flip(c.Gate()))
        yield* Deferred.await(served.observed.started).pipe(Effect.timeout("3 seconds"))
        // the connection drops; the handler answers meanwhile: its response is lost
        yield* proxy.cut()
        yield* Deferred.succeed(served.observed.gate, undefined)
        const error = yield* Fiber.join(call).pipe(Effect.timeout("5 seconds"))
        assert.strictEqual(error._tag, "RpcClientError")
        // the client is back, and calls again
        assert.strictEqual(
          yield* c.WhoServes().pipe(Effect.retry({ times: 20, schedule: Schedule.spaced("50 millis") })),
          "gated"
        )
      })))

    it.effect("a call to a subject nobody serves fails at once with RpcClientError", () =>
      Effect.scoped(Effect.gen(function*() {
        const nobody = yield* client(`rpc.nobody.${subjects++}`)
        const started = Date.now()
        const error = yield* Effect.flip(nobody.GetUser({ id: "u1" }))
        assert.strictEqual(error._tag, "RpcClientError")
        assert.isTrue(Date.now() - started < 500)
      })))

    it.effect("a graceful stop answers the call in flight; later calls go to the others", () =>
      Effect.scoped(Effect.gen(function*() {
        const { client, instances } = yield* three
        const slow = yield* Effect.forkChild(Stream.runCollect(client.CountTo({ n: 10, delayMs: 50 })))
        const serving = yield* Effect.raceAll(
          instances.map((i) => Effect.as(Deferred.await(i.observed.started), i))
        ).pipe(Effect.timeout("3 seconds"))
        yield* Scope.close(serving.scope, Exit.void)
        assert.deepStrictEqual(Array.from(yield* Fiber.join(slow)), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        const names = yield* Effect.forEach(Array.from({ length: 10 }), () => client.WhoServes())
        assert.isFalse(names.includes(serving.name))
      })))

    for (
      const [name, serialization] of [
        ["ndjson", RpcSerialization.layerNdjson],
        ["schema binary", RpcSerialization.layerSchemaBinary()],
        ["JSON-RPC", RpcSerialization.layerJsonRpc()]
      ] as const
    ) {
      it.effect(`serialization: ${name}`, () =>
        Effect.scoped(Effect.gen(function*() {
          const subject = `rpc.users.${subjects++}`
          const served = yield* instance("x", subject, serialization)
          yield* Effect.addFinalizer(() => Scope.close(served.scope, Exit.void))
          const c = yield* client(subject, serialization)
          assert.deepStrictEqual(yield* c.GetUser({ id: "u1" }), new User({ id: "u1", name: "tester" }))
          assert.instanceOf(yield* Effect.flip(c.GetUser({ id: "missing" })), NotFound)
          assert.deepStrictEqual(Array.from(yield* Stream.runCollect(c.CountTo({ n: 5, delayMs: 0 }))), [1, 2, 3, 4, 5])
        })))
    }

    it.effect("span propagation: the handler's span is the caller's span's child, across the broker", () =>
      Effect.scoped(Effect.gen(function*() {
        const { ended, tracer } = memoryTracer()
        const subject = `rpc.users.${subjects++}`
        const served = yield* instance("traced", subject, RpcSerialization.layerJson, tracer)
        yield* Effect.addFinalizer(() => Scope.close(served.scope, Exit.void))
        const c = yield* client(subject)
        yield* c.GetUser({ id: "u1" }).pipe(Effect.withSpan("caller"), Effect.withTracer(tracer))
        const find = (name: string, kind: Tracer.SpanKind) =>
          ended.find((span) => span.name === name && span.kind === kind)
        yield* Effect.sync(() => find("GetUser", "server") !== undefined).pipe(
          Effect.repeat({ until: (found) => found, schedule: Schedule.spaced("10 millis") }),
          Effect.timeout("3 seconds")
        )
        const caller = find("caller", "internal")
        const clientSpan = find("GetUser", "client")
        const serverSpan = find("GetUser", "server")
        assert.strictEqual(clientSpan?.parentSpanId, caller?.spanId)
        assert.strictEqual(serverSpan?.traceId, caller?.traceId, "one trace")
        assert.strictEqual(serverSpan?.parentSpanId, clientSpan?.spanId, "the server span is the client span's child")
      })))

    it.effect("an instance forgets a client idle for 30 heartbeats, and serves it again as a new one", () =>
      Effect.scoped(Effect.gen(function*() {
        const nats = yield* NatsClient.NatsClient
        const subject = `rpc.users.${subjects++}`
        const server = yield* ServerProtocol.make(nats, { subject, queue: "q", heartbeatMillis: 20, bufferSize: 1024 })
          .pipe(
            Effect.provide(RpcSerialization.layerJson)
          )
        yield* RpcServer.make(Users).pipe(
          Effect.provideService(RpcServer.Protocol, server.protocol),
          Effect.provide(handlers("idle", new Observed())),
          Effect.forkScoped
        )
        const c = yield* client(subject)
        assert.strictEqual(yield* c.WhoServes(), "idle")
        assert.strictEqual(server.clients(), 1)
        yield* Effect.sync(() => server.clients()).pipe(
          Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("50 millis") }),
          Effect.timeout("5 seconds")
        )
        assert.strictEqual(yield* c.WhoServes(), "idle")
        assert.strictEqual(server.clients(), 1)
      })))

    it.effect("options are validated before anything is subscribed", () =>
      Effect.scoped(Effect.gen(function*() {
        for (
          const options of [
            { subject: "rpc.*" },
            { subject: "rpc.ok", heartbeat: "0 millis" },
            { subject: "rpc.ok", bufferSize: 0 }
          ] as const
        ) {
          const error = yield* Effect.flip(
            Layer.build(NatsRpc.layerProtocolClient(options).pipe(Layer.provide(RpcSerialization.layerJson)))
          )
          assert.include(["InvalidArgument", "InvalidSubject"], error.reason._tag)
        }
      })))
  })
})
