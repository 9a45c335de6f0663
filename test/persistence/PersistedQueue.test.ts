import { assert, describe, it, layer } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Schema, Scope } from "effect"
import { PersistedQueue } from "effect/persistence"
import { LocalNats, NatsClient, NatsServer } from "../../src/index.ts"
import * as NatsPersistedQueue from "../../src/layers/NatsPersistedQueue.ts"
import { liveNats } from "../support/liveNats.ts"
import { suiteWith } from "./PersistedQueueSuite.ts"

const Job = Schema.Struct({ n: Schema.Int })

let n = 0
const fresh = (prefix: string) => `${prefix}-${++n}-${Math.random().toString(36).slice(2, 8)}`

/** A store on a connection of its own (another instance of the application). */
const storeOn = (server: NatsServer.NatsServerShape, options?: NatsPersistedQueue.StoreOptions) =>
  Effect.gen(function*() {
    const client = yield* NatsClient.make({ servers: server.urls, logEvents: false })
    const store = yield* NatsPersistedQueue.makeStore(options).pipe(
      Effect.provideService(NatsClient.NatsClient, client)
    )
    return { client, store }
  })

describe("PersistedQueue", () => {
  suiteWith("memory", PersistedQueue.layerStoreMemory, it)
  suiteWith("nats", NatsPersistedQueue.layerStore({ storage: "memory" }).pipe(Layer.provide(liveNats())), it)

  layer(LocalNats.layer(), { excludeTestServices: true })("on a real server", (it) => {
    it.effect("a taker that died: its element is redelivered after ackWait, its attempt counted", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const name = fresh("crash")
        const options = { stream: "CRASH", subjectPrefix: "crash", bucket: "crash", ackWait: "1 second" } as const
        const survivor = yield* storeOn(server, options)
        yield* survivor.store.offer({ name, id: "job-1", element: { n: 1 }, isCustomId: true })
        // another instance takes it, then its connection is gone without a word
        const doomed = yield* storeOn(server, options)
        const scope = yield* Scope.make()
        const first = yield* doomed.store.take({
          name,
          maxAttempts: 5,
          retryDelay: () => Effect.succeed(Duration.zero)
        })
          .pipe(Scope.provide(scope))
        assert.strictEqual(first.attempts, 1)
        yield* Effect.promise(() => doomed.client.connection.close())
        const again = yield* survivor.store.take({
          name,
          maxAttempts: 5,
          retryDelay: () => Effect.succeed(Duration.zero)
        })
          .pipe(Effect.scoped, Effect.timeout("10 seconds"))
        assert.deepStrictEqual([again.id, again.attempts, again.element], ["job-1", 2, { n: 1 }])
        yield* Scope.close(scope, Exit.void)
      }))

    it.effect("an element held longer than ackWait is kept alive, not redelivered", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const name = fresh("alive")
        const options = { stream: "ALIVE", subjectPrefix: "alive", bucket: "alive", ackWait: "1 second" } as const
        const a = yield* storeOn(server, options)
        const b = yield* storeOn(server, options)
        yield* a.store.offer({ name, id: "job", element: { n: 1 }, isCustomId: true })
        const retryDelay = () => Effect.succeed(Duration.zero)
        const held = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* a.store.take({ name, maxAttempts: 5, retryDelay }).pipe(
          Effect.tap(() => Deferred.succeed(held, undefined)),
          Effect.tap(() => Deferred.await(release)),
          Effect.scoped,
          Effect.forkChild
        )
        yield* Deferred.await(held)
        const other = yield* b.store.take({ name, maxAttempts: 5, retryDelay }).pipe(Effect.scoped, Effect.forkChild)
        // three times ackWait: a holder that stopped saying it works would have lost it
        yield* Effect.sleep("3 seconds")
        assert.isUndefined(other.pollUnsafe())
        yield* Deferred.succeed(release, undefined)
        assert.strictEqual((yield* Fiber.join(holder)).attempts, 1)
        yield* Effect.sleep("1500 millis")
        assert.isUndefined(other.pollUnsafe())
        yield* Fiber.interrupt(other)
      }), 20_000)

    it.effect("a delayed offer is not handed out before its time", () =>
      Effect.gen(function*() {
        const queue = yield* PersistedQueue.make({ name: fresh("delay"), schema: Job })
        const start = Date.now()
        yield* queue.offer({ n: 1 }, { delay: "1500 millis" })
        const value = yield* queue.take((job) => Effect.succeed(job.n))
        assert.strictEqual(value, 1)
        assert.isAtLeast(Date.now() - start, 1500)
      }).pipe(
        Effect.provide(
          PersistedQueue.layer.pipe(
            Layer.provide(NatsPersistedQueue.layerStore({ stream: "DELAY", subjectPrefix: "delay", bucket: "delay" }))
          )
        )
      ), 20_000)

    it.effect("elements offered before a server restart are taken after it, once", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const name = fresh("restart")
        const queue = yield* PersistedQueue.make({ name, schema: Job })
        for (let i = 0; i < 5; i++) yield* queue.offer({ n: i }, { id: `job-${i}` })
        yield* server.restart()
        // offered again after the restart: still deduplicated
        for (let i = 0; i < 5; i++) {
          yield* queue.offer({ n: i }, { id: `job-${i}` }).pipe(Effect.retry({ times: 50, schedule: undefined }))
        }
        const got: Array<number> = []
        for (let i = 0; i < 5; i++) yield* queue.take((job) => Effect.sync(() => got.push(job.n)))
        assert.deepStrictEqual(got.sort(), [0, 1, 2, 3, 4])
        const more = yield* queue.take(Effect.succeed).pipe(Effect.timeoutOption("1500 millis"))
        assert.isTrue(more._tag === "None")
      }).pipe(
        Effect.provide(
          PersistedQueue.layer.pipe(
            Layer.provide(
              NatsPersistedQueue.layerStore({ stream: "RESTART", subjectPrefix: "restart", bucket: "restart" })
            )
          )
        )
      ), 60_000)

    it.effect("two instances share a queue: each element handled exactly once", () =>
      Effect.gen(function*() {
        const server = yield* NatsServer.NatsServer
        const name = fresh("shared")
        const options = { stream: "SHARED", subjectPrefix: "shared", bucket: "shared" }
        const a = yield* storeOn(server, options)
        const b = yield* storeOn(server, options)
        const total = 40
        for (let i = 0; i < total; i++) {
          yield* (i % 2 === 0 ? a : b).store.offer({ name, id: `e${i}`, element: i, isCustomId: true })
        }
        const handled: Array<unknown> = []
        const worker = (store: typeof a.store) =>
          store.take({ name, maxAttempts: 3, retryDelay: () => Effect.succeed(Duration.zero) }).pipe(
            Effect.tap((item) => Effect.sync(() => handled.push(item.element))),
            Effect.scoped,
            Effect.forever,
            Effect.forkChild
          )
        const workers = [yield* worker(a.store), yield* worker(a.store), yield* worker(b.store), yield* worker(b.store)]
        yield* Effect.sleep("100 millis").pipe(
          Effect.repeat({ until: () => handled.length >= total }),
          Effect.timeout("20 seconds")
        )
        yield* Effect.sleep("500 millis")
        yield* Effect.forEach(workers, Fiber.interrupt)
        assert.deepStrictEqual(
          [...handled].sort((x, y) => Number(x) - Number(y)),
          Array.from({ length: total }, (_, i) => i)
        )
      }), 30_000)
  })
})
