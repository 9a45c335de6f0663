/**
 * JetStream Key-Value buckets as a typed Effect service: values through a
 * Codec (JSON through a Schema, strings, bytes), revisions for
 * compare-and-set, `keys` and `history` as Streams.
 *
 * @since 0.1.0
 */
import type { Bucket, KV, KvEntry, KvOptions } from "@nats-io/kv"
import { Kvm } from "@nats-io/kv"
import type { Duration } from "effect"
import { type Context, Effect, Layer, Option, Result, Stream } from "effect"
import * as Decode from "../internal/decode.ts"
import { millis } from "../internal/duration.ts"
import { defined, invalidArgument, natsError } from "../internal/errors.ts"
import { jsFromUnknown } from "../internal/jsErrors.ts"
import { ApiCodes } from "../internal/jsErrors.ts"
import * as Reads from "../internal/kvReads.ts"
import * as KvRequests from "../internal/kvRequests.ts"
import * as Ordered from "../internal/orderedRead.ts"
import * as Validation from "../internal/validation.ts"
import * as Codec from "../schemas/Codec.ts"
import * as ConsumerConfig from "../schemas/ConsumerConfig.ts"
import * as NatsError from "../schemas/NatsError.ts"
import * as JetStreamManager from "./JetStreamManager.ts"
import { NatsClient } from "./NatsClient.ts"

/**
 * A bucket's configuration (what nats-server 2.9 honours).
 *
 * @category models
 * @since 0.1.0
 */
export interface BucketConfig {
  /** Values kept per key (1 to 64). Default 1. */
  readonly history?: number | undefined
  /** How long a value lives; unset: forever. */
  readonly ttl?: Duration.Input | undefined
  /** Largest value, in bytes; unset: the server's limit. */
  readonly maxValueSize?: number | undefined
  /** The bucket's size limit, in bytes; unset: none. */
  readonly maxBytes?: number | undefined
  /** Default `"file"`. */
  readonly storage?: "file" | "memory" | undefined
  /** 1, 3 or 5 (on a cluster). Default 1. */
  readonly replicas?: number | undefined
  readonly description?: string | undefined
}

/**
 * A value of a key at one revision.
 *
 * @category models
 * @since 0.1.0
 */
export interface Entry<A> {
  readonly key: string
  /** The decoded value (in `history`, `undefined` for a delete or purge marker). */
  readonly value: A
  /** The bucket's sequence of this write: what `update` compares against. */
  readonly revision: number
  readonly created: Date
  readonly operation: "PUT" | "DEL" | "PURGE"
}

/**
 * A bucket, typed by its values.
 *
 * @category models
 * @since 0.1.0
 */
export interface KeyValueShape<A> {
  readonly bucket: string
  /** The raw nats.js bucket (escape hatch). */
  readonly raw: KV
  /** The key's current value; `None` when it has none (never written, deleted or purged). */
  readonly get: (key: string) => Effect.Effect<Option.Option<Entry<A>>, NatsError.NatsError | Codec.DecodeError>
  /** Writes the value; returns its revision. */
  readonly put: (key: string, value: A) => Effect.Effect<number, NatsError.NatsError | Codec.EncodeError>
  /** Writes the value only if the key has none; `KeyExists` otherwise. */
  readonly create: (key: string, value: A) => Effect.Effect<number, NatsError.NatsError | Codec.EncodeError>
  /** Writes the value only if the key is still at `revision`; `WrongRevision` otherwise. */
  readonly update: (
    key: string,
    value: A,
    revision: number
  ) => Effect.Effect<number, NatsError.NatsError | Codec.EncodeError>
  /** Deletes the value (a delete marker; history is kept). */
  readonly delete: (key: string) => Effect.Effect<void, NatsError.NatsError>
  /** Deletes the value and its history (a purge marker). */
  readonly purge: (key: string) => Effect.Effect<void, NatsError.NatsError>
  /**
   * Removes the delete and purge markers older than `olderThan` (default 30
   * minutes) with what they hide: the upkeep of a bucket whose keys come
   * and go. Returns how many messages were removed.
   */
  readonly purgeDeletes: (olderThan?: Duration.Input) => Effect.Effect<number, NatsError.NatsError>
  /** The keys that have a value (optionally matching a filter with `*` / `>`). */
  readonly keys: (filter?: string) => Stream.Stream<string, NatsError.NatsError>
  /**
   * The bucket's writes as they happen (by default the last value of every
   * key first, then each write), delete and purge markers included (their
   * `value` undefined, unless `ignoreDeletes`). Survives reconnects and
   * server restarts: a watch that ends or fails is opened again from the
   * revision after the last one it delivered, so no revision is missed or
   * repeated.
   */
  readonly watch: (
    options?: WatchOptions
  ) => Stream.Stream<Entry<A | undefined>, NatsError.NatsError | Codec.DecodeError>
  /** The key's kept revisions, oldest first, delete and purge markers included (their `value` undefined). */
  readonly history: (key: string) => Stream.Stream<Entry<A | undefined>, NatsError.NatsError | Codec.DecodeError>
}

/**
 * Options of `watch`.
 *
 * @category models
 * @since 0.1.0
 */
export interface WatchOptions {
  /** A key, or a filter with `*` / `>`. Default: every key. */
  readonly key?: string | undefined
  /** What comes first: the last value of each key (default), the whole history, or nothing (updates only). */
  readonly include?: "lastValue" | "allHistory" | "updatesOnly" | undefined
  /** Leave out delete and purge markers. */
  readonly ignoreDeletes?: boolean | undefined
  /** Start at this revision (every write from it on; `include` is then ignored). */
  readonly fromRevision?: number | undefined
}

/**
 * What `watch` and `history` do with a value that does not decode (the
 * policies of subscriptions): `"logAndSkip"` (a warning naming the key and
 * revision), `"fail"`, or a handler given the error and the raw entry.
 *
 * @category models
 * @since 0.1.0
 */
export type OnDecodeError =
  | "fail"
  | "logAndSkip"
  | ((error: Codec.DecodeError, entry: Entry<Uint8Array>) => Effect.Effect<void>)

/**
 * Options of `make`.
 *
 * @category models
 * @since 0.1.0
 */
export interface KeyValueOptions<A> {
  /** The bucket's name (letters, digits, `-` and `_`). */
  readonly bucket: string
  /** How values are encoded. Default: bytes (`Uint8Array`). */
  readonly codec?: Codec.Input<A> | undefined
  /**
   * A value in `watch` or `history` that does not decode: logged and skipped
   * (default), `"fail"` (the Stream fails with its `DecodeError`), or a
   * handler. `get` always fails with the `DecodeError`.
   */
  readonly onDecodeError?: OnDecodeError | undefined
  /** Creates the bucket when it does not exist (an existing one is opened as it is). Without it, it must exist. */
  readonly config?: BucketConfig | undefined
}

const validKey = /^[-/=.\w]+$/
const validFilter = /^[-/=.>*\w]+$/

const validBucket = /^[-\w]+$/

/** The problem with a key, if any (the KV key rules: no leading or trailing `.`, `-/_=.` letters and digits). */
const keyProblem = (key: unknown): string | undefined =>
  typeof key !== "string" || key === ""
    ? "a key must be a non-empty string"
    : key.startsWith(".") || key.endsWith(".") || !validKey.test(key)
    ? `invalid key ${JSON.stringify(key.slice(0, 64))}: letters, digits, "-", "/", "_", "=" and ".", not first or last`
    : undefined

const nativeOptions = (config: BucketConfig, operation: string): Partial<KvOptions> | NatsError.NatsError => {
  const invalid = Validation.counts(operation, undefined, {
    history: config.history,
    maxValueSize: config.maxValueSize,
    maxBytes: config.maxBytes,
    replicas: config.replicas
  }) ?? Validation.durations(operation, { ttl: config.ttl })
  if (invalid !== undefined) return invalid
  if (config.history !== undefined && config.history > 64) {
    return invalidArgument(operation, `history must be at most 64, got ${config.history}`)
  }
  return {
    ...(config.history === undefined ? {} : { history: config.history }),
    ...(config.ttl === undefined ? {} : { ttl: millis(config.ttl) }),
    ...(config.maxValueSize === undefined ? {} : { maxValueSize: config.maxValueSize }),
    ...(config.maxBytes === undefined ? {} : { max_bytes: config.maxBytes }),
    ...(config.storage === undefined ? {} : { storage: config.storage as KvOptions["storage"] }),
    ...(config.replicas === undefined ? {} : { replicas: config.replicas }),
    ...(config.description === undefined ? {} : { description: config.description })
  }
}

const isWrongSequence = (cause: unknown): boolean => {
  const code = cause as { readonly code?: unknown; readonly apiError?: () => { readonly err_code?: number } }
  const apiCode = typeof code.apiError === "function" ? code.apiError().err_code : undefined
  return apiCode === ApiCodes.StreamWrongLastSequence || apiCode === ApiCodes.StreamWrongLastSequenceUnknown
}

/**
 * Opens (or, with options, creates) the bucket. nats.js' `open` does not
 * look: the bucket's status is read (it must exist), and a bucket that allows
 * direct gets (any replica answers: much faster) is opened with them, which
 * `open` does not do unless told.
 */
const openBucket = (
  kvm: Kvm,
  bucket: string,
  native: Partial<KvOptions> | undefined,
  failed: (cause: unknown) => NatsError.NatsError
): Effect.Effect<KV, NatsError.NatsError> =>
  Effect.gen(function*() {
    const opened = yield* Effect.tryPromise({
      try: () => native === undefined ? kvm.open(bucket) : kvm.create(bucket, native),
      catch: failed
    })
    const status = yield* Effect.tryPromise({ try: () => opened.status(), catch: failed })
    return native === undefined && status.streamInfo.config.allow_direct === true
      ? yield* Effect.tryPromise({ try: () => kvm.open(bucket, { allow_direct: true }), catch: failed })
      : opened
  })

/** The key's revision now (`undefined`: no value, or it could not be read). */
const currentRevision = (kv: KV, key: string): Effect.Effect<number | undefined> =>
  Effect.tryPromise(() => kv.get(key)).pipe(
    Effect.map((e) => e === null || e.operation !== "PUT" ? undefined : e.revision),
    Effect.orElseSucceed(() => undefined)
  )

/** A call on a key, checked first (`InvalidArgument` naming what is wrong with it). */
const checked = <B, E>(key: string, op: string, f: () => Effect.Effect<B, E>) => {
  const problem = keyProblem(key)
  return problem === undefined ? f() : Effect.fail(invalidArgument(op, problem))
}

/** Stored entries as typed ones (a marker's value is `undefined`). */
const decoder = <A>(codec: Codec.Codec<A>, bucket: string) =>
(
  e: Reads.RawEntry
): Result.Result<Entry<A | undefined>, Codec.DecodeError> => {
  const base = { key: e.key, revision: e.revision, created: e.created, operation: e.operation }
  if (e.operation !== "PUT") return Result.succeed({ ...base, value: undefined })
  const value = codec.decode(e.value)
  return Result.isSuccess(value)
    ? Result.succeed({ ...base, value: value.success })
    : Result.fail(Codec.withSubject(value.failure, `${bucket}.${e.key}`))
}

const rawOf = (e: KvEntry): Reads.RawEntry => ({
  key: e.key,
  value: e.value,
  revision: e.revision,
  created: e.created,
  operation: e.operation
})

const logAndSkip = (bucket: string) => (error: Codec.DecodeError, e: Reads.RawEntry): Effect.Effect<void> =>
  Effect.logWarning(
    `nats: skipped revision ${e.revision} of key ${e.key} in bucket ${bucket}: it did not decode: ${error.message}`
  ).pipe(Effect.annotateLogs({ bucket, key: e.key, revision: e.revision }))

/**
 * Raw entries decoded a chunk at a time, by the bucket's decode policy;
 * `seen` is told of every entry (decoded or not) before it is decoded.
 */
const decodeEntries = <A, E>(
  raw: Stream.Stream<Reads.RawEntry, E>,
  entryOf: (e: Reads.RawEntry) => Result.Result<Entry<A | undefined>, Codec.DecodeError>,
  policy: Decode.Policy<Reads.RawEntry, never>,
  seen?: (e: Reads.RawEntry) => void
): Stream.Stream<Entry<A | undefined>, E | Codec.DecodeError> =>
  Decode.decodeStream(raw, {
    decode: (e, out) => {
      seen?.(e)
      const entry = entryOf(e)
      if (Result.isFailure(entry)) return entry.failure
      out.push(entry.success)
      return undefined
    },
    policy
  })

const encoder = <A>(codec: Codec.Codec<A>, bucket: string) => (value: A, key: string) => {
  const bytes = codec.encode(value)
  return Result.isSuccess(bytes)
    ? Effect.succeed(bytes.success)
    : Effect.fail(Codec.withSubject(bytes.failure, `${bucket}.${key}`))
}

/** Where a watch starts. */
const watchStart = (options: WatchOptions | undefined): ConsumerConfig.DeliverPolicy =>
  options?.fromRevision !== undefined
    ? ConsumerConfig.deliver.startSequence(options.fromRevision)
    : options?.include === "allHistory"
    ? ConsumerConfig.deliver.all
    : options?.include === "updatesOnly"
    ? ConsumerConfig.deliver.new
    : ConsumerConfig.deliver.lastPerSubject

/** `watch`: an ordered read of the bucket, read on after the last revision it delivered when it fails. */
const watchBucket = <A>(
  bucket: Reads.Bucket,
  entryOf: (e: Reads.RawEntry) => Result.Result<Entry<A | undefined>, Codec.DecodeError>,
  policy: Decode.Policy<Reads.RawEntry, never>,
  options: WatchOptions | undefined
): Stream.Stream<Entry<A | undefined>, NatsError.NatsError | Codec.DecodeError> => {
  const filter = options?.key ?? ">"
  if (typeof filter !== "string" || filter === "" || !validFilter.test(filter)) {
    return Stream.fail(invalidArgument("KeyValue.watch", `invalid key filter ${JSON.stringify(String(filter))}`))
  }
  const invalid = Validation.counts("KeyValue.watch", undefined, { fromRevision: options?.fromRevision })
  if (invalid !== undefined) return Stream.fail(invalid)
  const initial = watchStart(options)
  return decodeEntries(
    Reads.read(
      bucket,
      filter,
      (last) => last > 0 ? ConsumerConfig.deliver.startSequence(last + 1) : initial,
      { retry: Ordered.forever, maxMessages: 1000 }
    ).pipe(Stream.filter((e) => !(options?.ignoreDeletes === true && e.operation !== "PUT"))),
    entryOf,
    policy
  )
}

/** `purgeDeletes`: the method is the bucket's, not on nats.js' KV interface. */
const purgeMarkers = (
  kv: KV,
  failed: (cause: unknown) => NatsError.NatsError,
  olderThan: Duration.Input | undefined
): Effect.Effect<number, NatsError.NatsError> => {
  const invalid = Validation.durations("KeyValue.purgeDeletes", { olderThan })
  if (invalid !== undefined) return Effect.fail(invalid)
  return Effect.tryPromise({
    try: () => (kv as Bucket).purgeDeletes(olderThan === undefined ? undefined : millis(olderThan)),
    catch: failed
  }).pipe(Effect.map((response) => response.purged))
}

/** `keys`: the last write of every key up to the bucket's last revision, values left out, markers skipped. */
const keysOf = (reads: Reads.Bucket, filter = ">"): Stream.Stream<string, NatsError.NatsError> =>
  typeof filter !== "string" || filter === "" || !validFilter.test(filter)
    ? Stream.fail(invalidArgument("KeyValue.keys", `invalid key filter ${JSON.stringify(String(filter))}`))
    : Reads.upToLast(reads, filter, ConsumerConfig.deliver.lastPerSubject, true).pipe(
      Stream.filter((e) => e.operation === "PUT"),
      Stream.map((e) => e.key)
    )

/**
 * A typed handle on a bucket, on the `NatsClient`'s connection.
 *
 * @example
 * ```ts
 * const settings = yield* KeyValue.make({ bucket: "settings", codec: Schema.Struct({ limit: Schema.Int }), config: {} })
 * const revision = yield* settings.put("orders", { limit: 10 })
 * yield* settings.update("orders", { limit: 20 }, revision) // WrongRevision if someone wrote in between
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fn("KeyValue.make")(function*<A = Uint8Array>(options: KeyValueOptions<A>) {
  const operation = "KeyValue.make"
  const nats = yield* NatsClient
  const bucket = options.bucket
  if (typeof bucket !== "string" || !validBucket.test(bucket)) {
    return yield* invalidArgument(operation, `invalid bucket name ${JSON.stringify(String(bucket).slice(0, 64))}`)
  }
  const codec = (options.codec === undefined ? Codec.bytes : Codec.fromInput(options.codec)) as Codec.Codec<A>
  const native = options.config === undefined ? undefined : nativeOptions(options.config, operation)
  if (NatsError.isNatsError(native)) return yield* native
  const failed = (op: string, key?: string) => (cause: unknown) =>
    jsFromUnknown(cause, { operation: op, stream: `KV_${bucket}`, subject: key === undefined ? undefined : key })
  const kv = yield* openBucket(new Kvm(nats.connection), bucket, native, failed(operation))
  const reads: Reads.Bucket = { bucket, manager: yield* JetStreamManager.make(), nats }
  const entryOf = decoder(codec, bucket)
  const policy = options.onDecodeError === undefined || options.onDecodeError === "logAndSkip"
    ? logAndSkip(bucket)
    : options.onDecodeError
  const encoded = encoder(codec, bucket)
  const revisionOf = (key: string) => currentRevision(kv, key)

  // through the connection's request mux (see `internal/kvRequests`)
  const directGet = KvRequests.directGet(kv, nats.core.requests, (key, cause) => failed("KeyValue.get", key)(cause))
  const putBytes = KvRequests.put(
    kv,
    nats.core.requests,
    nats.core.jetstream,
    (key, cause) => failed("KeyValue.put", key)(cause)
  )
  const get: KeyValueShape<A>["get"] = (key) =>
    checked(
      key,
      "KeyValue.get",
      () =>
        (directGet === undefined
          ? Effect.tryPromise({ try: () => kv.get(key), catch: failed("KeyValue.get", key) })
          : directGet(key)).pipe(
            Effect.flatMap((e) => {
              if (e === null || e.operation !== "PUT") return Effect.succeed(Option.none())
              const entry = entryOf(rawOf(e))
              // a PUT: its value is decoded
              return Result.isSuccess(entry)
                ? Effect.succeed(Option.some(entry.success as Entry<A>))
                : Effect.fail(entry.failure)
            })
          )
    )

  const put: KeyValueShape<A>["put"] = (key, value) =>
    checked(
      key,
      "KeyValue.put",
      () =>
        Effect.flatMap(encoded(value, key), (bytes) =>
          putBytes === undefined
            ? Effect.tryPromise({ try: () => kv.put(key, bytes), catch: failed("KeyValue.put", key) })
            : putBytes(key, bytes))
    )

  /** A write refused by the expected-revision check: `conflict` with the key's revision now. */
  const guarded = (
    op: string,
    key: string,
    write: () => Promise<number>,
    conflict: (current: number | undefined) => NatsError.NatsErrorReason
  ) =>
    Effect.tryPromise({ try: write, catch: (cause) => cause }).pipe(
      Effect.catch((cause) =>
        isWrongSequence(cause)
          ? Effect.flatMap(revisionOf(key), (current) => Effect.fail(natsError(conflict(current))))
          : Effect.fail(failed(op, key)(cause))
      )
    )

  const create: KeyValueShape<A>["create"] = (key, value) =>
    checked(
      key,
      "KeyValue.create",
      () =>
        Effect.flatMap(encoded(value, key), (bytes) =>
          guarded("KeyValue.create", key, () =>
            kv.create(key, bytes), (revision) =>
            new NatsError.KeyExists(defined({
              operation: "KeyValue.create",
              bucket,
              key,
              revision,
              message: `key ${key} of bucket ${bucket} has a value${
                revision === undefined ? "" : ` (revision ${revision})`
              }`
            }))))
    )

  const update: KeyValueShape<A>["update"] = (key, value, revision) =>
    checked(key, "KeyValue.update", () => {
      const invalid = Validation.counts("KeyValue.update", undefined, { revision })
      if (invalid !== undefined) return Effect.fail(invalid)
      return Effect.flatMap(encoded(value, key), (bytes) =>
        guarded("KeyValue.update", key, () =>
          kv.update(key, bytes, revision), (current) =>
          new NatsError.WrongRevision(defined({
            operation: "KeyValue.update",
            bucket,
            key,
            expected: revision,
            current,
            message: `key ${key} of bucket ${bucket} is not at revision ${revision}${
              current === undefined ? " (it has no value)" : ` (it is at ${current})`
            }`
          }))))
    })

  const remove = (op: "delete" | "purge"): KeyValueShape<A>["delete"] => (key) =>
    checked(
      key,
      `KeyValue.${op}`,
      () =>
        Effect.tryPromise({
          try: () => op === "delete" ? kv.delete(key) : kv.purge(key),
          catch: failed(`KeyValue.${op}`, key)
        })
    )

  const history: KeyValueShape<A>["history"] = (key) => {
    const problem = keyProblem(key)
    if (problem !== undefined) return Stream.fail(invalidArgument("KeyValue.history", problem))
    return decodeEntries(Reads.upToLast(reads, key, ConsumerConfig.deliver.all), entryOf, policy)
  }

  const watch: KeyValueShape<A>["watch"] = (options) => watchBucket(reads, entryOf, policy, options)

  const shape: KeyValueShape<A> = {
    bucket,
    raw: kv,
    get,
    put,
    create,
    update,
    delete: remove("delete"),
    purge: remove("purge"),
    purgeDeletes: (olderThan) => purgeMarkers(kv, failed("KeyValue.purgeDeletes"), olderThan),
    keys: (filter) => keysOf(reads, filter),
    watch,
    history
  }
  return shape
})

/**
 * A layer providing an application's bucket as its own service.
 *
 * @example
 * ```ts
 * class Settings extends Context.Service<Settings, KeyValue.KeyValueShape<Setting>>()("app/Settings") {}
 * const SettingsLive = KeyValue.layer(Settings, { bucket: "settings", codec: Setting, config: { history: 5 } })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <I, A>(
  service: Context.Key<I, KeyValueShape<A>>,
  options: KeyValueOptions<A>
): Layer.Layer<I, NatsError.NatsError, NatsClient> => Layer.effect(service, make(options))
