/**
 * The cases of Effect's own `KeyValueStore` tests (its shared store suite and
 * the memory store's tests, in Effect-TS/effect `packages/effect/test/persistence`),
 * written again over any store: run on Effect's memory store and on ours, they
 * show both behave alike. A few cases of our own follow (awkward keys,
 * `keys`, `clearPrefix`, `has`, `isEmpty`).
 */
import type { Vitest } from "@effect/vitest"
import { assert } from "@effect/vitest"
import { Effect, Option, Schema } from "effect"
import * as Base64 from "effect/encoding/Base64"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import * as Persistence from "effect/persistence/Persistence"

export const suite = (name: string, it: Vitest.MethodsNonLive<KeyValueStore.KeyValueStore>) => {
  const fresh = Effect.tap(KeyValueStore.KeyValueStore, (kv) => kv.clear)

  it.effect(`${name}: set + get + size`, () =>
    Effect.gen(function*() {
      const kv = yield* fresh
      yield* kv.set("key", "value")
      assert.strictEqual(yield* kv.get("key"), "value")
      assert.strictEqual(yield* kv.size, 1)
      yield* kv.set("key", "value-2")
      assert.strictEqual(yield* kv.get("key"), "value-2")
      assert.strictEqual(yield* kv.size, 1)
    }))

  it.effect(`${name}: binary values`, () =>
    Effect.gen(function*() {
      const kv = yield* fresh
      const bytes = new Uint8Array([0, 42, 255, 128])
      yield* kv.set("binary", bytes)
      assert.strictEqual(yield* kv.get("binary"), Base64.encode(bytes))
      assert.deepStrictEqual(yield* kv.getUint8Array("binary"), bytes)
    }))

  it.effect(`${name}: string values are not decoded as base64`, () =>
    Effect.gen(function*() {
      const kv = yield* fresh
      yield* kv.set("string", "Zm9v")
      assert.strictEqual(yield* kv.get("string"), "Zm9v")
      assert.deepStrictEqual(yield* kv.getUint8Array("string"), new TextEncoder().encode("Zm9v"))
    }))

  it.effect(`${name}: utf8 string values`, () =>
    Effect.gen(function*() {
      const kv = yield* fresh
      const value = "héllo 👋"
      yield* kv.set("utf8", value)
      assert.strictEqual(yield* kv.get("utf8"), value)
      assert.deepStrictEqual(yield* kv.getUint8Array("utf8"), new TextEncoder().encode(value))
    }))

  it.effect(`${name}: remove`, () =>
    Effect.gen(function*() {
      const kv = yield* fresh
      yield* kv.set("a", "1")
      yield* kv.remove("a")
      assert.strictEqual(yield* kv.get("a"), undefined)
      assert.strictEqual(yield* kv.size, 0)
    }))

  it.effect(`${name}: clear`, () =>
    Effect.gen(function*() {
      const kv = yield* fresh
      yield* kv.set("a", "1")
      yield* kv.set("b", "2")
      yield* kv.clear
      assert.strictEqual(yield* kv.size, 0)
      assert.strictEqual(yield* kv.get("a"), undefined)
      assert.strictEqual(yield* kv.get("b"), undefined)
    }))

  it.effect(`${name}: set with a path key, get of a missing key`, () =>
    Effect.gen(function*() {
      const kv = yield* fresh
      yield* kv.set("/foo/bar", "bar")
      assert.strictEqual(yield* kv.get("/foo/bar"), "bar")
      assert.strictEqual(yield* kv.size, 1)
      assert.strictEqual(yield* kv.get("foo"), undefined)
    }))

  it.effect(`${name}: modify, and modify of a missing key`, () =>
    Effect.gen(function*() {
      const kv = yield* fresh
      yield* kv.set("foo", "bar")
      assert.strictEqual(yield* kv.modify("foo", (v) => v + "bar"), "barbar")
      assert.strictEqual(yield* kv.size, 1)
      assert.strictEqual(yield* kv.modify("none", (v) => v + "bar"), undefined)
      assert.strictEqual(yield* kv.size, 1)
      const bytes = yield* kv.modifyUint8Array("foo", (v) => v.subarray(0, 3))
      assert.deepStrictEqual(bytes, new TextEncoder().encode("bar"))
      assert.deepStrictEqual(yield* kv.getUint8Array("foo"), new TextEncoder().encode("bar"))
    }))

  it.effect(`${name}: setMany through Persistence.layerBackingKvs (namespaced keys with ":")`, () =>
    Effect.gen(function*() {
      yield* fresh
      const backing = yield* Persistence.BackingPersistence
      const store = yield* backing.make("store")
      yield* store.setMany([["key", { value: 1 }, undefined]])
      assert.deepStrictEqual(yield* store.get("key"), { value: 1 })
    }).pipe(Effect.scoped, Effect.provide(Persistence.layerBackingKvs)))

  it.effect(`${name}: prefix`, () =>
    Effect.gen(function*() {
      const store = yield* fresh
      const prefixed = KeyValueStore.prefix(store, "prefix/")
      yield* prefixed.set("foo", "bar")
      yield* prefixed.modify("foo", (v) => v + "bar")
      assert.strictEqual(yield* prefixed.get("foo"), "barbar")
      assert.isTrue(yield* prefixed.has("foo"))
      assert.strictEqual(yield* store.get("prefix/foo"), "barbar")
      assert.isTrue(yield* store.has("prefix/foo"))
    }))

  class User extends Schema.Class<User>("User")({ name: Schema.String, age: Schema.Number }) {}

  it.effect(`${name}: toSchemaStore encodes and decodes`, () =>
    Effect.gen(function*() {
      const schemaStore = KeyValueStore.toSchemaStore(yield* fresh, User)
      yield* schemaStore.set("foo", new User({ name: "foo", age: 42 }))
      yield* schemaStore.modify("foo", (user) => new User({ ...user, age: 43 }))
      const value = yield* schemaStore.get("foo")
      assert.isTrue(Option.isSome(value))
      assert.strictEqual(Option.getOrThrow(value).age, 43)
      const dates = KeyValueStore.toSchemaStore(yield* fresh, Schema.Struct({ a: Schema.Date }))
      yield* dates.set("foo", { a: new Date(0) })
      assert.deepStrictEqual(Option.map(yield* dates.get("foo"), (v) => v.a), Option.some(new Date(0)))
    }))

  it.effect(`${name}: keys, clearPrefix, has and isEmpty, with keys NATS refuses as they are`, () =>
    Effect.gen(function*() {
      const kv = yield* fresh
      assert.isTrue(yield* kv.isEmpty)
      const keys = ["a:b", "a:c", "%25 odd.key.", ".lead", "", "ünï/cödé", "b"]
      for (const key of keys) yield* kv.set(key, key)
      assert.deepStrictEqual([...(yield* kv.keys)].sort(), [...keys].sort())
      for (const key of keys) assert.strictEqual(yield* kv.get(key), key)
      assert.isFalse(yield* kv.isEmpty)
      assert.isTrue(yield* kv.has(".lead"))
      assert.isFalse(yield* kv.has("a"))
      yield* kv.clearPrefix("a:")
      assert.deepStrictEqual([...(yield* kv.keys)].sort(), ["", "%25 odd.key.", ".lead", "b", "ünï/cödé"])
    }))
}
