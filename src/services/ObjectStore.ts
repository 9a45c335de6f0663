/**
 * JetStream Object Stores as a typed Effect service: objects of any size put
 * from and read as `Stream`s of bytes with bounded memory, the SHA-256
 * digest checked on every read, `info`, `list` and `watch`, `delete`,
 * `link`, metadata and headers.
 *
 * **Memory.** `put` reads its Stream a chunk at a time (nats.js publishes
 * each chunk and waits for its ack before it reads on). `get` reads the
 * object's chunks through an ordered consumer a few at a time as the Stream
 * is pulled (nats.js' own `get` pushes every chunk into its ReadableStream as
 * fast as they arrive, whatever the reader does: a slow reader of a large
 * object would hold all of it). What a reader holds is a few chunks, whatever
 * the object's size.
 *
 * **Integrity.** `get` hashes what it hands out and compares, after the last
 * chunk, with the digest recorded by `put`; chunks that do not add up to the
 * recorded size (one lost), or a different digest (one altered), fail the
 * Stream with `DigestMismatch`: a damaged object never reads as complete.
 *
 * On nats-server 2.9, store `metadata` and `compression` need 2.10 and are
 * not offered; objects' `metadata` and `headers` are client-side (in the
 * object's meta message) and work.
 *
 * @since 0.1.0
 */
import type { MsgHdrs } from "@nats-io/nats-core"
import type {
  ObjectInfo as NatsObjectInfo,
  ObjectStore as NatsObjectStore,
  ObjectStoreMeta,
  ObjectStoreOptions as NatsStoreOptions
} from "@nats-io/obj"
import { Objm } from "@nats-io/obj"
import type { Context } from "effect"
import { Deferred, Effect, Layer, Option, Stream } from "effect"
import type { Duration } from "effect"
import { createHash } from "node:crypto"
import { millis } from "../internal/duration.ts"
import { defined, invalidArgument, natsError } from "../internal/errors.ts"
import { jsFromUnknown } from "../internal/jsErrors.ts"
import * as Ordered from "../internal/orderedRead.ts"
import * as Validation from "../internal/validation.ts"
import * as ConsumerConfig from "../schemas/ConsumerConfig.ts"
import * as Headers from "../schemas/Headers.ts"
import * as NatsError from "../schemas/NatsError.ts"
import * as JetStreamManager from "./JetStreamManager.ts"
import { NatsClient } from "./NatsClient.ts"

/**
 * A store's configuration (what nats-server 2.9 honours).
 *
 * @category models
 * @since 0.1.0
 */
export interface StoreConfig {
  readonly description?: string | undefined
  /** How long objects live; unset: forever. */
  readonly ttl?: Duration.Input | undefined
  /** The store's size limit, in bytes; unset: none. */
  readonly maxBytes?: number | undefined
  /** Default `"file"`. */
  readonly storage?: "file" | "memory" | undefined
  /** 1, 3 or 5 (on a cluster). Default 1. */
  readonly replicas?: number | undefined
}

/**
 * What describes an object besides its bytes.
 *
 * @category models
 * @since 0.1.0
 */
export interface ObjectMeta {
  readonly description?: string | undefined
  /** Headers kept with the object (a content type, say). */
  readonly headers?: Headers.HeadersInit | undefined
  /** Free-form string pairs kept with the object. */
  readonly metadata?: Readonly<Record<string, string>> | undefined
  /** The size of the chunks it is stored in. Default 128 KiB (at most the server's `max_payload`). */
  readonly chunkSize?: number | undefined
}

/**
 * A stored object's description.
 *
 * @category models
 * @since 0.1.0
 */
export interface ObjectInfo {
  readonly bucket: string
  readonly name: string
  /** Bytes. */
  readonly size: number
  readonly chunks: number
  /** `SHA-256=` and the digest, base64url. */
  readonly digest: string
  readonly modified: Date
  /** The sequence of its meta message: it changes with every put or update. */
  readonly revision: number
  readonly description: string | undefined
  readonly headers: MsgHdrs | undefined
  readonly metadata: Readonly<Record<string, string>> | undefined
  /** For a link: the object it points to. */
  readonly link: { readonly bucket: string; readonly name: string | undefined } | undefined
}

/**
 * An object store.
 *
 * @category models
 * @since 0.1.0
 */
export interface ObjectStoreShape {
  readonly bucket: string
  /** The raw nats.js store (escape hatch). */
  readonly raw: NatsObjectStore
  /** Stores the bytes of the Stream as the object (replacing one of that name); its failure fails the put, and nothing is stored. */
  readonly put: <E, R>(
    name: string,
    data: Stream.Stream<Uint8Array, E, R>,
    meta?: ObjectMeta
  ) => Effect.Effect<ObjectInfo, NatsError.NatsError | E, R>
  /** Stores a small object from bytes in memory. */
  readonly putBytes: (
    name: string,
    data: Uint8Array,
    meta?: ObjectMeta
  ) => Effect.Effect<ObjectInfo, NatsError.NatsError>
  /**
   * The object's bytes, chunk by chunk, the digest checked after the last
   * (`DigestMismatch` instead of an end when it differs); `ObjectNotFound`
   * when there is none. A link is followed.
   */
  readonly get: (name: string) => Stream.Stream<Uint8Array, NatsError.NatsError>
  /** A small object's bytes in memory (through `get`: checked); `None` when there is none. */
  readonly getBytes: (name: string) => Effect.Effect<Option.Option<Uint8Array>, NatsError.NatsError>
  /** The object's description; `None` when there is none. */
  readonly info: (name: string) => Effect.Effect<Option.Option<ObjectInfo>, NatsError.NatsError>
  /** Every object (not the deleted). */
  readonly list: Stream.Stream<ObjectInfo, NatsError.NatsError>
  /**
   * Changes as they happen: puts, updates and deletions (`deleted: true`);
   * with `includeHistory`, the current description of every object first.
   */
  readonly watch: (
    options?: { readonly includeHistory?: boolean | undefined; readonly ignoreDeletes?: boolean | undefined }
  ) => Stream.Stream<ObjectInfo & { readonly deleted: boolean }, NatsError.NatsError>
  /** Deletes the object (its chunks are purged); `ObjectNotFound` when there is none. */
  readonly delete: (name: string) => Effect.Effect<void, NatsError.NatsError>
  /** Makes `name` a link to `target` (an object of this store or of another). */
  readonly link: (name: string, target: ObjectInfo) => Effect.Effect<ObjectInfo, NatsError.NatsError>
  /** Changes the object's description, headers or metadata, or renames it (`name`). */
  readonly update: (
    name: string,
    meta: Omit<ObjectMeta, "chunkSize"> & { readonly name?: string | undefined }
  ) => Effect.Effect<void, NatsError.NatsError>
}

/**
 * Options of `make`.
 *
 * @category models
 * @since 0.1.0
 */
export interface ObjectStoreOptions {
  /** The store's name (letters, digits, `-` and `_`). */
  readonly bucket: string
  /** Creates the store when it does not exist (an existing one is opened as it is). Without it, it must exist. */
  readonly config?: StoreConfig | undefined
}

const validBucket = /^[-\w]+$/
const digestPrefix = "SHA-256="

const nativeOptions = (config: StoreConfig, operation: string): Partial<NatsStoreOptions> | NatsError.NatsError => {
  const invalid = Validation.counts(operation, undefined, { maxBytes: config.maxBytes, replicas: config.replicas }) ??
    Validation.durations(operation, { ttl: config.ttl })
  if (invalid !== undefined) return invalid
  return {
    ...(config.description === undefined ? {} : { description: config.description }),
    ...(config.ttl === undefined ? {} : { ttl: millis(config.ttl) * 1_000_000 }),
    ...(config.maxBytes === undefined ? {} : { max_bytes: config.maxBytes }),
    ...(config.storage === undefined ? {} : { storage: config.storage as NatsStoreOptions["storage"] }),
    ...(config.replicas === undefined ? {} : { replicas: config.replicas })
  }
}

const infoOf = (raw: NatsObjectInfo): ObjectInfo => ({
  bucket: raw.bucket,
  name: raw.name,
  size: raw.size,
  chunks: raw.chunks,
  digest: raw.digest,
  modified: new Date(raw.mtime),
  revision: raw.revision,
  description: raw.description,
  headers: raw.headers,
  metadata: raw.metadata,
  link: raw.options?.link === undefined ? undefined : { bucket: raw.options.link.bucket, name: raw.options.link.name }
})

/** The digest's bytes (base64url as nats.js and the Go client write it; base64 or hex from others). */
const digestBytes = (digest: string): Buffer | undefined => {
  const body = digest.slice(digestPrefix.length)
  if (!digest.startsWith(digestPrefix)) return undefined
  if (/^[0-9a-fA-F]{64}$/.test(body)) return Buffer.from(body, "hex")
  const bytes = Buffer.from(body, "base64url")
  return bytes.length === 32 ? bytes : undefined
}

/**
 * The meta fields nats.js stores: its headers as a `MsgHdrs` and the chunk
 * size in its options; validated first.
 */
const nativeMeta = (name: string, meta: ObjectMeta | undefined, operation: string) => {
  if (typeof name !== "string" || name === "") {
    return invalidArgument(operation, "an object name must be a non-empty string")
  }
  const invalid = Validation.counts(operation, undefined, { chunkSize: meta?.chunkSize })
  if (invalid !== undefined) return invalid
  const headersProblem = meta?.headers === undefined ? undefined : Headers.validate(meta.headers)
  if (headersProblem !== undefined) return invalidArgument(operation, headersProblem)
  return {
    name,
    ...(meta?.description === undefined ? {} : { description: meta.description }),
    ...(meta?.headers === undefined ? {} : { headers: Headers.fromInit(meta.headers) }),
    ...(meta?.metadata === undefined ? {} : { metadata: { ...meta.metadata } }),
    ...(meta?.chunkSize === undefined ? {} : { options: { max_chunk_size: meta.chunkSize } })
  }
}

/**
 * The object's chunks through an ordered consumer, a few at a time, hashed
 * as they pass; the end checked against the recorded size and digest.
 */
const readChunks = (
  manager: JetStreamManager.JetStreamManagerShape,
  nats: NatsClient["Service"],
  stream: string,
  info: NatsObjectInfo,
  failed: (cause: unknown) => NatsError.NatsError
): Stream.Stream<Uint8Array, NatsError.NatsError> => {
  const mismatch = (message: string, computed?: string) =>
    natsError(
      new NatsError.DigestMismatch(defined({
        operation: "ObjectStore.get",
        bucket: info.bucket,
        name: info.name,
        expected: info.digest,
        computed,
        message: `object ${info.name} of store ${info.bucket}: ${message}`
      }))
    )
  const expected = digestBytes(info.digest)
  if (expected === undefined) return Stream.fail(mismatch(`unreadable digest ${JSON.stringify(info.digest)}`))
  if (info.size === 0) return Stream.empty
  const subject = `$O.${info.bucket}.C.${info.nuid}`
  return Stream.unwrap(
    Effect.gen(function*() {
      // none of its chunks left: an ordered read would wait for them forever
      const last = yield* manager.getMessage(stream, { lastBySubject: subject })
      if (Option.isNone(last)) return Stream.fail(mismatch(`its ${info.chunks} chunks are missing`))
      const sha = createHash("sha256")
      let size = 0
      let chunks = 0
      const end = Effect.suspend(() => {
        const computed = sha.digest()
        if (size !== info.size || chunks !== info.chunks) {
          return Effect.fail(
            mismatch(`read ${chunks} chunks, ${size} bytes; ${info.chunks} chunks, ${info.size} bytes were stored`)
          )
        }
        return computed.equals(expected)
          ? Effect.void
          : Effect.fail(
            mismatch("the bytes read do not match the digest", `${digestPrefix}${computed.toString("base64url")}=`)
          )
      })
      const source = { stream, manager, nats, operation: "ObjectStore.get" }
      const start = (at: number) => at > 0 ? ConsumerConfig.deliver.startSequence(at + 1) : ConsumerConfig.deliver.all
      return Ordered.read(source, subject, start, { maxMessages: 8, bufferSize: 4, retry: Ordered.bounded }).pipe(
        // up to the last chunk stored (the server's pending count may reach 0 early after a restart)
        Stream.takeUntil((msg) => msg.streamSequence >= last.value.seq),
        Stream.map((msg) => {
          sha.update(msg.value)
          size += msg.value.length
          chunks++
          return msg.value
        }),
        Stream.concat(Stream.fromEffectDrain(end))
      )
    }).pipe(Effect.mapError(failed))
  )
}

/**
 * A handle on an object store, on the `NatsClient`'s connection.
 *
 * @example
 * ```ts
 * const files = yield* ObjectStore.make({ bucket: "files", config: { storage: "file" } })
 * yield* files.put("report.csv", Stream.make(new TextEncoder().encode("a,b\n1,2\n")), {
 *   headers: { "Content-Type": "text/csv" }
 * })
 * const bytes = yield* Stream.runCollect(files.get("report.csv")) // the digest checked at the end
 * ```
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fn("ObjectStore.make")(function*(options: ObjectStoreOptions) {
  const operation = "ObjectStore.make"
  const bucket = options.bucket
  if (typeof bucket !== "string" || !validBucket.test(bucket)) {
    return yield* invalidArgument(operation, `invalid store name ${JSON.stringify(String(bucket).slice(0, 64))}`)
  }
  const native = options.config === undefined ? undefined : nativeOptions(options.config, operation)
  if (NatsError.isNatsError(native)) return yield* native
  const nats = yield* NatsClient
  const manager = yield* JetStreamManager.make()
  const stream = `OBJ_${bucket}`
  const failed = (op: string, name?: string) => (cause: unknown) =>
    jsFromUnknown(cause, { operation: op, stream, subject: name })
  const objm = new Objm(nats.connection)
  const os = yield* Effect.tryPromise({
    try: () => native === undefined ? objm.open(bucket) : objm.create(bucket, native),
    catch: failed(operation)
  })
  const interrupted = (name: string) =>
    natsError(new NatsError.Unknown({ operation: "ObjectStore.put", message: `the put of ${name} was interrupted` }))
  const notFound = (op: string, name: string) =>
    natsError(
      new NatsError.ObjectNotFound({ operation: op, bucket, name, message: `no object ${name} in store ${bucket}` })
    )
  /** The raw description of a live object (a link followed, to this store or another). */
  const resolve = (name: string, op: string): Effect.Effect<[NatsObjectInfo, string], NatsError.NatsError> =>
    Effect.gen(function*() {
      const info = yield* Effect.tryPromise({ try: () => os.info(name), catch: failed(op, name) })
      if (info === null || info.deleted) return yield* notFound(op, name)
      const link = info.options?.link
      if (link === undefined) return [info, stream] as [NatsObjectInfo, string]
      if (link.name === undefined || link.name === "") {
        return yield* invalidArgument(op, `${name} is a link to the store ${link.bucket}, not to an object`)
      }
      const target = link.bucket === bucket ? os : yield* Effect.tryPromise({
        try: () => objm.open(link.bucket),
        catch: failed(op, name)
      })
      const linked = yield* Effect.tryPromise({ try: () => target.info(link.name ?? ""), catch: failed(op, name) })
      if (linked === null || linked.deleted) return yield* notFound(op, `${link.bucket}/${link.name}`)
      return [linked, `OBJ_${link.bucket}`] as [NatsObjectInfo, string]
    })

  const put = <E, R>(name: string, data: Stream.Stream<Uint8Array, E, R>, meta?: ObjectMeta) =>
    Effect.gen(function*() {
      const native = nativeMeta(name, meta, "ObjectStore.put")
      if (NatsError.isNatsError(native)) return yield* native
      // the Stream's own failure, kept to fail the put with (nats.js sees only that its reader failed)
      let upstream: { readonly error: E } | undefined
      // an interrupted put fails its Stream: nats.js then purges the chunks it stored
      const stop = yield* Deferred.make<never, NatsError.NatsError>()
      const readable = yield* Stream.toReadableStreamEffect(
        data.pipe(
          Stream.tapError((error) => Effect.sync(() => upstream = { error })),
          Stream.interruptWhen(Deferred.await(stop))
        )
      )
      const stored = yield* Effect.tryPromise({
        try: (signal) => {
          signal.addEventListener("abort", () => Deferred.doneUnsafe(stop, Effect.fail(interrupted(name))))
          return os.put(native, readable)
        },
        catch: (cause): NatsError.NatsError | E =>
          upstream === undefined ? failed("ObjectStore.put", name)(cause) : upstream.error
      })
      return infoOf(stored)
    })

  const get: ObjectStoreShape["get"] = (name) =>
    Stream.unwrap(
      Effect.map(
        resolve(name, "ObjectStore.get"),
        ([info, from]) => readChunks(manager, nats, from, info, failed("ObjectStore.get", name))
      )
    )

  const info: ObjectStoreShape["info"] = (name) =>
    Effect.tryPromise({ try: () => os.info(name), catch: failed("ObjectStore.info", name) }).pipe(
      Effect.map((raw) => raw === null || raw.deleted ? Option.none() : Option.some(infoOf(raw)))
    )

  const shape: ObjectStoreShape = {
    bucket,
    raw: os,
    put,
    putBytes: (name, bytes, meta) => put(name, Stream.make(bytes), meta),
    get,
    getBytes: (name) =>
      get(name).pipe(
        Stream.runCollect,
        Effect.map((chunks) => Option.some(Buffer.concat(chunks) as Uint8Array)),
        Effect.catchReason("NatsError", "ObjectNotFound", () => Effect.succeed(Option.none<Uint8Array>()))
      ),
    info,
    list: Stream.unwrap(
      Effect.tryPromise({ try: () => os.list(), catch: failed("ObjectStore.list") }).pipe(
        Effect.map((all) => Stream.fromIterable(all.filter((i) => !i.deleted).map(infoOf)))
      )
    ),
    watch: (watchOptions) =>
      watchStore({ stream, manager, nats, operation: "ObjectStore.watch" }, bucket, watchOptions),
    delete: (name) =>
      Effect.gen(function*() {
        // nats.js deletes a deleted object again without a word
        const current = yield* info(name)
        if (Option.isNone(current)) return yield* notFound("ObjectStore.delete", name)
        yield* Effect.tryPromise({ try: () => os.delete(name), catch: failed("ObjectStore.delete", name) })
      }),
    link: (name, target) =>
      Effect.gen(function*() {
        const native = nativeMeta(name, undefined, "ObjectStore.link")
        if (NatsError.isNatsError(native)) return yield* native
        const source = target.bucket === bucket ? os : yield* Effect.tryPromise({
          try: () => objm.open(target.bucket),
          catch: failed("ObjectStore.link", name)
        })
        const raw = yield* Effect.tryPromise({
          try: () => source.info(target.name),
          catch: failed("ObjectStore.link", name)
        })
        if (raw === null || raw.deleted) return yield* notFound("ObjectStore.link", `${target.bucket}/${target.name}`)
        return infoOf(
          yield* Effect.tryPromise({ try: () => os.link(name, raw), catch: failed("ObjectStore.link", name) })
        )
      }),
    update: (name, meta) =>
      Effect.gen(function*() {
        const native = nativeMeta(meta.name ?? name, meta, "ObjectStore.update")
        if (NatsError.isNatsError(native)) return yield* native
        const current = yield* Effect.tryPromise({
          try: () => os.info(name),
          catch: failed("ObjectStore.update", name)
        })
        if (current === null || current.deleted) return yield* notFound("ObjectStore.update", name)
        // nats.js replaces the whole description: what is not changed is carried over
        const merged = defined({
          name: native.name,
          description: native.description ?? current.description,
          metadata: native.metadata ?? current.metadata,
          headers: native.headers ?? current.headers,
          options: current.options
        }) as Partial<ObjectStoreMeta>
        yield* Effect.tryPromise({ try: () => os.update(name, merged), catch: failed("ObjectStore.update", name) })
      })
  }
  return shape
})

/** `watch`: the meta messages of the store in order (bounded; read on after the last one when a read fails). */
const watchStore = (
  source: Ordered.Source,
  bucket: string,
  options: { readonly includeHistory?: boolean | undefined; readonly ignoreDeletes?: boolean | undefined } | undefined
): Stream.Stream<ObjectInfo & { readonly deleted: boolean }, NatsError.NatsError> => {
  const initial = options?.includeHistory === true ? ConsumerConfig.deliver.lastPerSubject : ConsumerConfig.deliver.new
  const start = (last: number) => last > 0 ? ConsumerConfig.deliver.startSequence(last + 1) : initial
  return Ordered.read(source, `$O.${bucket}.M.>`, start, { maxMessages: 64, retry: Ordered.forever }).pipe(
    Stream.map((msg) => ({ ...msg.msg.json<NatsObjectInfo>(), revision: msg.streamSequence })),
    Stream.filter((raw) => !(options?.ignoreDeletes === true && raw.deleted)),
    Stream.map((raw) => ({ ...infoOf(raw), deleted: raw.deleted === true }))
  )
}

/**
 * A layer providing an application's object store as its own service.
 *
 * @example
 * ```ts
 * class Files extends Context.Service<Files, ObjectStore.ObjectStoreShape>()("app/Files") {}
 * const FilesLive = ObjectStore.layer(Files, { bucket: "files", config: {} })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = <I>(
  service: Context.Key<I, ObjectStoreShape>,
  options: ObjectStoreOptions
): Layer.Layer<I, NatsError.NatsError, NatsClient> => Layer.effect(service, make(options))
