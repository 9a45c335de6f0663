/**
 * Reading a Key-Value bucket's stream through our ordered consumer (a few
 * entries pulled at a time as the Stream is pulled; nats.js recreates the
 * consumer when it loses its place, across reconnects and restarts), for
 * `watch`, `history` and `keys`.
 *
 * nats.js' own `history` and `keys` end *normally* with part of the entries
 * when the connection drops mid-read (they take any heartbeat, or a pending
 * count of 0 that a restarted server may give early, as the end), and its
 * `watch` answers flow control on receipt, so an unread watch buffers
 * without limit. Here a read of what is stored first looks up the bucket's
 * last revision for its filter and reads up to it: it ends complete, or fails.
 *
 * @internal
 */
import { Effect, Option, Stream } from "effect"
import * as ConsumerConfig from "../schemas/ConsumerConfig.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import type * as JetStreamManager from "../services/JetStreamManager.ts"
import type { NatsClient } from "../services/NatsClient.ts"
import * as Ordered from "./orderedRead.ts"
import * as RawHeaders from "./rawHeaders.ts"

/** A write of a bucket, as stored. */
export interface RawEntry {
  readonly key: string
  readonly value: Uint8Array
  readonly revision: number
  readonly created: Date
  readonly operation: "PUT" | "DEL" | "PURGE"
}

/** What reading a bucket's stream needs. */
export interface Bucket {
  readonly bucket: string
  readonly manager: JetStreamManager.JetStreamManagerShape
  readonly nats: NatsClient["Service"]
}

const streamOf = (b: Bucket) => `KV_${b.bucket}`

const operationOf = (msg: Ordered.Delivery): RawEntry["operation"] => {
  const op = RawHeaders.get(msg.msg, "KV-Operation")
  return op === "DEL" || op === "PURGE" ? op : "PUT"
}

const sourceOf = (b: Bucket): Ordered.Source => ({
  stream: streamOf(b),
  manager: b.manager,
  nats: b.nats,
  operation: `KeyValue (${b.bucket})`
})

/**
 * The writes matching `filter` (a key or a `*` / `>` pattern), with what is
 * left after each, read on after the last one delivered when a read fails
 * (see `orderedRead`). `start` says where a read begins given the last
 * revision delivered (0 at first).
 */
export const read = (
  b: Bucket,
  filter: string,
  start: (last: number) => ConsumerConfig.DeliverPolicy,
  options: Ordered.ReadOptions
): Stream.Stream<RawEntry & { readonly pending: number }, NatsError.NatsError> => {
  const prefix = `$KV.${b.bucket}.`
  return Ordered.read(sourceOf(b), prefix + filter, start, options).pipe(
    Stream.map((msg) => ({
      key: msg.subject.slice(prefix.length),
      value: msg.value,
      revision: msg.streamSequence,
      created: new Date(msg.storedMillis),
      operation: operationOf(msg),
      pending: msg.pending
    }))
  )
}

/** The bucket's last revision matching `filter`; `undefined` when nothing matches. */
export const lastRevision = (b: Bucket, filter: string): Effect.Effect<number | undefined, NatsError.NatsError> =>
  b.manager.getMessage(streamOf(b), { lastBySubject: `$KV.${b.bucket}.${filter}` }).pipe(
    Effect.map(Option.match({ onNone: () => undefined, onSome: (m) => m.seq }))
  )

/**
 * What is stored for `filter`, up to the revision that was last when the
 * read began: complete when it ends, or failed (typed) when it could not be
 * read on within about 30 s. (When the server says nothing is left before
 * that revision came, the last revision is looked up again: it may have
 * expired meanwhile.)
 */
export const upToLast = (
  b: Bucket,
  filter: string,
  deliver: ConsumerConfig.DeliverPolicy,
  headersOnly = false
): Stream.Stream<RawEntry, NatsError.NatsError> =>
  Stream.unwrap(Effect.map(lastRevision(b, filter), (target) =>
    target === undefined ? Stream.empty : read(
      b,
      filter,
      // a history goes on after the last entry; last values per key, again (those seen are filtered out)
      (last) => last > 0 && deliver._tag === "All" ? ConsumerConfig.deliver.startSequence(last + 1) : deliver,
      { headersOnly, retry: Ordered.bounded }
    ).pipe(
      Stream.takeUntilEffect((e) =>
        e.revision >= target
          ? Effect.succeed(true)
          : e.pending > 0
          ? Effect.succeed(false)
          : Effect.map(lastRevision(b, filter), (now) => now === undefined || now <= e.revision)
      )
    )))
