/**
 * Effect's `KeyValueStore` (from `effect/persistence`) on a NATS Key-Value
 * bucket: what builds on it (`Persistence.layerBackingKvs`, `PersistedCache`,
 * `toSchemaStore`, your own code) runs on NATS with one Layer, shared by
 * every instance of an application and surviving restarts.
 *
 * - **Values** keep their kind: a string is read back as that string and a
 *   `Uint8Array` as those bytes (`get` of bytes gives their Base64, as
 *   Effect's own stores do). One byte before the value says which.
 * - **Keys** can be any string: those NATS refuses (`:`, `%`, spaces, a `.`
 *   at either end...) are encoded reversibly (`=XX` per byte other than
 *   letters, digits, `-` and `_`), so `keys` gives back what was set.
 * - **`modify`** is atomic: a compare-and-set on the key's revision, tried
 *   again when another writer came first (Effect's default reads then
 *   writes, and loses updates under concurrency).
 * - **`clear`** purges the bucket's stream in one call.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Option, Stream } from "effect"
import * as Base64 from "effect/encoding/Base64"
import * as KeyValueStore from "effect/persistence/KeyValueStore"
import * as Token from "../internal/tokenEncoding.ts"
import type * as Codec from "../schemas/Codec.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import * as JetStreamManager from "../services/JetStreamManager.ts"
import * as KeyValue from "../services/KeyValue.ts"
import type { NatsClient } from "../services/NatsClient.ts"

/**
 * Options of `make` and `layer`.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** The bucket. Default `"effect-kv"`. */
  readonly bucket?: string | undefined
  /** Its configuration when it is created (an existing bucket is used as it is). Default: one value per key, file storage. */
  readonly config?: KeyValue.BucketConfig | undefined
}

const STRING = 0
const BYTES = 1
const utf8 = new TextEncoder()
const text = new TextDecoder()

const tagged = (value: string | Uint8Array): Uint8Array => {
  const body = typeof value === "string" ? utf8.encode(value) : value
  const out = new Uint8Array(body.length + 1)
  out[0] = typeof value === "string" ? STRING : BYTES
  out.set(body, 1)
  return out
}

const asString = (stored: Uint8Array): string =>
  stored[0] === BYTES ? Base64.encode(stored.subarray(1)) : text.decode(stored.subarray(1))

const asBytes = (stored: Uint8Array): Uint8Array => stored.slice(1)

/** How many times `modify` reads and compares-and-sets before it gives up (others kept writing first). */
const modifyAttempts = 64

/**
 * The store on a bucket (created when missing), on the `NatsClient`'s
 * connection.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fn("NatsKeyValueStore.make")(function*(options?: Options) {
  const bucket = options?.bucket ?? "effect-kv"
  const kv = yield* KeyValue.make({ bucket, config: options?.config ?? {} })
  const jsm = yield* JetStreamManager.make()
  const failed =
    (method: string, key?: string) => (error: NatsError.NatsError | Codec.DecodeError | Codec.EncodeError) =>
      new KeyValueStore.KeyValueStoreError({
        method,
        ...(key === undefined ? {} : { key }),
        message: `Unable to ${method}${
          key === undefined ? "" : ` ${JSON.stringify(key)}`
        } in bucket ${bucket}: ${error.message}`,
        cause: error
      })
  const read = (key: string) =>
    kv.get(Token.encode(key)).pipe(
      Effect.map(Option.map((entry) => entry.value)),
      Effect.mapError(failed("get", key))
    )
  const keys = Stream.runCollect(kv.keys()).pipe(
    Effect.map((tokens) => tokens.flatMap((token) => Token.decode(token) ?? [])),
    Effect.mapError(failed("keys"))
  )
  /** A compare-and-set loop on the key's revision; `None` when it has no value. */
  const modifyWith = <A>(key: string, f: (stored: Uint8Array) => string | Uint8Array, out: (s: Uint8Array) => A) =>
    Effect.gen(function*() {
      const token = Token.encode(key)
      for (let i = 1;; i++) {
        const current = yield* kv.get(token)
        if (Option.isNone(current)) return undefined
        const next = tagged(f(current.value.value))
        const written = yield* Effect.result(kv.update(token, next, current.value.revision))
        if (written._tag === "Success") return out(next)
        // another writer came first: read again (a bounded number of times)
        const conflict = written.failure._tag === "NatsError" && written.failure.reason._tag === "WrongRevision"
        if (!conflict || i === modifyAttempts) return yield* written.failure
      }
    }).pipe(Effect.mapError(failed("modify", key)))

  return KeyValueStore.make({
    get: (key) => Effect.map(read(key), Option.match({ onNone: () => undefined, onSome: asString })),
    getUint8Array: (key) => Effect.map(read(key), Option.match({ onNone: () => undefined, onSome: asBytes })),
    set: (key, value) =>
      kv.put(Token.encode(key), tagged(value)).pipe(Effect.asVoid, Effect.mapError(failed("set", key))),
    remove: (key) => kv.delete(Token.encode(key)).pipe(Effect.mapError(failed("remove", key))),
    clear: jsm.purgeStream(`KV_${bucket}`).pipe(Effect.asVoid, Effect.mapError(failed("clear"))),
    size: Effect.map(keys, (all) => all.length),
    keys,
    has: (key) => Effect.map(read(key), Option.isSome),
    isEmpty: kv.keys().pipe(
      Stream.take(1),
      Stream.runCount,
      Effect.map((n) => n === 0),
      Effect.mapError(failed("isEmpty"))
    ),
    modify: (key, f) => modifyWith(key, (stored) => f(asString(stored)), asString),
    modifyUint8Array: (key, f) => modifyWith(key, (stored) => f(asBytes(stored)), asBytes)
  })
})

/**
 * Effect's `KeyValueStore` service on a NATS bucket.
 *
 * @example
 * ```ts
 * import { KeyValueStore } from "effect/persistence"
 * const Store = NatsKeyValueStore.layer({ bucket: "sessions", config: { ttl: "1 day" } })
 * const program = KeyValueStore.KeyValueStore.use((store) => store.set("user:1", "alice"))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<KeyValueStore.KeyValueStore, NatsError.NatsError, NatsClient> =>
  Layer.effect(KeyValueStore.KeyValueStore, make(options))
