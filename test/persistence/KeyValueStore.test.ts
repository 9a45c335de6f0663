import { assert, describe, layer } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import { LocalNats } from "../../src/index.ts"
import * as NatsKeyValueStore from "../../src/layers/NatsKeyValueStore.ts"
import * as KeyValue from "../../src/services/KeyValue.ts"
import { suite } from "./KeyValueStoreSuite.ts"

describe("KeyValueStore", () => {
  layer(KeyValueStore.layerMemory)("Effect's memory store", (it) => suite("memory", it))

  const nats = LocalNats.layer()
  layer(Layer.provideMerge(NatsKeyValueStore.layer({ bucket: "suite", config: { storage: "memory" } }), nats), {
    excludeTestServices: true
  })("NatsKeyValueStore", (it) => {
    suite("nats", it)

    it.effect("modify is atomic: concurrent increments are all kept", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValueStore.KeyValueStore
        yield* kv.set("counter", "0")
        yield* Effect.forEach(
          Array.from({ length: 20 }, () => kv.modify("counter", (v) => String(Number(v) + 1))),
          (inc) => inc,
          { concurrency: 20, discard: true }
        )
        assert.strictEqual(yield* kv.get("counter"), "20")
      }))

    it.effect("values live in the bucket: a second store on it sees them, and the bucket's own keys are encoded", () =>
      Effect.gen(function*() {
        const kv = yield* KeyValueStore.KeyValueStore
        yield* kv.clear
        yield* kv.set("user:1", "alice")
        const other = yield* NatsKeyValueStore.make({ bucket: "suite" })
        assert.strictEqual(yield* other.get("user:1"), "alice")
        const raw = yield* KeyValue.make({ bucket: "suite" })
        assert.deepStrictEqual(yield* Stream.runCollect(raw.keys()), [
          "user=3A1"
        ])
      }))
  })
})
