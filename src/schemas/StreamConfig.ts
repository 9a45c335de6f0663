/**
 * Typed JetStream stream configuration: durations are `Duration`, sizes are
 * numbers of bytes, enums are literal unions. Only options that nats-server
 * 2.9 honours are offered (no `metadata`, `compression`, per-message TTL).
 *
 * @since 0.1.0
 */
import type { StreamConfig as NatsStreamConfig } from "@nats-io/jetstream"
import { Duration, Schema } from "effect"
import { nanos } from "../internal/duration.ts"

/**
 * A name for a stream or consumer: non-empty, no whitespace, `.`, `*`, `>`,
 * `/` or `\`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Name = Schema.String.check(
  Schema.makeFilter(
    (s: string) =>
      s.length > 0 && !/[\s.*>/\\]/.test(s)
        ? undefined
        : "a name is non-empty, without whitespace, '.', '*', '>', '/', '\\'",
    { identifier: "Name" }
  )
)

/**
 * A duration for the server: finite and not negative.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ServerDuration = Schema.Duration.check(
  Schema.makeFilter(
    (d: Duration.Duration) =>
      Duration.isFinite(d) && !Duration.isNegative(d) ? undefined : "a duration that is finite and not negative",
    { identifier: "ServerDuration" }
  )
)

/** A limit where -1 means unlimited. */
const Limit = Schema.Int.check(Schema.isGreaterThanOrEqualTo(-1))

/**
 * How a stream retains messages: `limits` (until a limit is hit),
 * `interest` (while some consumer has not acked), `workqueue` (until one
 * consumer acks).
 *
 * @category schemas
 * @since 0.1.0
 */
export const Retention = Schema.Literals(["limits", "interest", "workqueue"])

/**
 * Where a stream stores messages.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Storage = Schema.Literals(["file", "memory"])

/**
 * What a stream does when a limit is hit: discard `old` messages, or refuse
 * `new` ones.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Discard = Schema.Literals(["old", "new"])

/**
 * A stream's configuration. Unset fields take the server's defaults.
 *
 * @category schemas
 * @since 0.1.0
 */
export const StreamConfig = Schema.Struct({
  name: Name,
  subjects: Schema.Array(Schema.String),
  description: Schema.optional(Schema.String),
  retention: Schema.optional(Retention),
  storage: Schema.optional(Storage),
  replicas: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 5 }))),
  /** Oldest message kept; zero means no age limit. */
  maxAge: Schema.optional(ServerDuration),
  /** Total size in bytes; -1 is unlimited. */
  maxBytes: Schema.optional(Limit),
  maxMsgs: Schema.optional(Limit),
  maxMsgsPerSubject: Schema.optional(Limit),
  /** Largest message in bytes; -1 is unlimited. */
  maxMsgSize: Schema.optional(Limit),
  maxConsumers: Schema.optional(Limit),
  discard: Schema.optional(Discard),
  discardNewPerSubject: Schema.optional(Schema.Boolean),
  /** Window in which a repeated `msgId` is a duplicate (default 2 minutes). */
  duplicateWindow: Schema.optional(ServerDuration),
  denyDelete: Schema.optional(Schema.Boolean),
  denyPurge: Schema.optional(Schema.Boolean),
  allowRollup: Schema.optional(Schema.Boolean),
  allowDirect: Schema.optional(Schema.Boolean),
  noAck: Schema.optional(Schema.Boolean)
})

/**
 * A stream's configuration.
 *
 * @category models
 * @since 0.1.0
 */
export type StreamConfig = typeof StreamConfig.Type

/**
 * The nats.js (wire) form of a configuration: snake_case, durations in
 * nanoseconds. Unset fields are left out.
 *
 * @category conversions
 * @since 0.1.0
 */
export const toNats = (config: StreamConfig): Partial<NatsStreamConfig> & { name: string } => {
  const out: Record<string, unknown> = { name: config.name, subjects: [...config.subjects] }
  const set = (key: string, value: unknown) => {
    if (value !== undefined) out[key] = value
  }
  set("description", config.description)
  set("retention", config.retention)
  set("storage", config.storage)
  set("num_replicas", config.replicas)
  set("max_age", config.maxAge === undefined ? undefined : nanos(config.maxAge))
  set("max_bytes", config.maxBytes)
  set("max_msgs", config.maxMsgs)
  set("max_msgs_per_subject", config.maxMsgsPerSubject)
  set("max_msg_size", config.maxMsgSize)
  set("max_consumers", config.maxConsumers)
  set("discard", config.discard)
  set("discard_new_per_subject", config.discardNewPerSubject)
  set("duplicate_window", config.duplicateWindow === undefined ? undefined : nanos(config.duplicateWindow))
  set("deny_delete", config.denyDelete)
  set("deny_purge", config.denyPurge)
  set("allow_rollup_hdrs", config.allowRollup)
  set("allow_direct", config.allowDirect)
  set("no_ack", config.noAck)
  return out as Partial<NatsStreamConfig> & { name: string }
}

/**
 * The typed form of a configuration read from the server.
 *
 * @category conversions
 * @since 0.1.0
 */
export const fromNats = (config: NatsStreamConfig): StreamConfig => ({
  name: config.name,
  subjects: config.subjects ?? [],
  ...(config.description === undefined ? {} : { description: config.description }),
  retention: config.retention,
  storage: config.storage,
  replicas: config.num_replicas,
  maxAge: Duration.nanos(BigInt(config.max_age)),
  maxBytes: config.max_bytes,
  maxMsgs: config.max_msgs,
  maxMsgsPerSubject: config.max_msgs_per_subject,
  maxMsgSize: config.max_msg_size,
  maxConsumers: config.max_consumers,
  discard: config.discard,
  discardNewPerSubject: config.discard_new_per_subject ?? false,
  duplicateWindow: Duration.nanos(BigInt(config.duplicate_window)),
  denyDelete: config.deny_delete,
  denyPurge: config.deny_purge,
  allowRollup: config.allow_rollup_hdrs,
  allowDirect: config.allow_direct,
  noAck: config.no_ack ?? false
})
