/**
 * Typed JetStream consumer configuration: durations are `Duration`, enums
 * are literal unions, the start position is a tagged value. Only options that
 * nats-server 2.9 honours are offered (no `filter_subjects`, `metadata`,
 * priority groups, pause).
 *
 * @since 0.1.0
 */
import type { ConsumerConfig as NatsConsumerConfig } from "@nats-io/jetstream"
import { Schema } from "effect"
import { nanos } from "../internal/duration.ts"
import { Name, ServerDuration } from "./StreamConfig.ts"

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
/** A limit where -1 means unlimited. */
const Limit = Schema.Int.check(Schema.isGreaterThanOrEqualTo(-1))

/**
 * How messages must be acknowledged: each one (`explicit`), a sequence and
 * everything before it (`all`), or not at all (`none`).
 *
 * @category schemas
 * @since 0.1.0
 */
export const AckPolicy = Schema.Literals(["explicit", "all", "none"])

/**
 * Where a new consumer starts.
 *
 * @category schemas
 * @since 0.1.0
 */
export const DeliverPolicy = Schema.Union([
  Schema.TaggedStruct("All", {}),
  Schema.TaggedStruct("Last", {}),
  Schema.TaggedStruct("New", {}),
  Schema.TaggedStruct("LastPerSubject", {}),
  Schema.TaggedStruct("StartSequence", { sequence: PositiveInt }),
  Schema.TaggedStruct("StartTime", { time: Schema.Date })
])

/**
 * Where a new consumer starts.
 *
 * @category models
 * @since 0.1.0
 */
export type DeliverPolicy = typeof DeliverPolicy.Type

/**
 * Start positions.
 *
 * @category constructors
 * @since 0.1.0
 */
export const deliver = {
  all: { _tag: "All" } as DeliverPolicy,
  last: { _tag: "Last" } as DeliverPolicy,
  new: { _tag: "New" } as DeliverPolicy,
  lastPerSubject: { _tag: "LastPerSubject" } as DeliverPolicy,
  startSequence: (sequence: number): DeliverPolicy => ({ _tag: "StartSequence", sequence }),
  startTime: (time: Date): DeliverPolicy => ({ _tag: "StartTime", time })
} as const

/**
 * How messages are replayed: as fast as possible, or at their original pace.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ReplayPolicy = Schema.Literals(["instant", "original"])

/**
 * A consumer's configuration. A `durable` name makes it durable; without one
 * the server names it and removes it after `inactiveThreshold`. Unset fields
 * take the server's defaults (`ackPolicy` defaults to `explicit`).
 *
 * @category schemas
 * @since 0.1.0
 */
export const ConsumerConfig = Schema.Struct({
  durable: Schema.optional(Name),
  description: Schema.optional(Schema.String),
  /** Only messages on subjects matching this pattern. */
  filterSubject: Schema.optional(Schema.String),
  ackPolicy: Schema.optional(AckPolicy),
  /** Redelivered if not acked within this time. */
  ackWait: Schema.optional(ServerDuration),
  /** Deliveries before giving up on a message; -1 is unlimited. */
  maxDeliver: Schema.optional(Limit),
  /** Redelivery delays by delivery count (overrides `ackWait` for redeliveries). */
  backoff: Schema.optional(Schema.Array(ServerDuration)),
  deliverPolicy: Schema.optional(DeliverPolicy),
  replayPolicy: Schema.optional(ReplayPolicy),
  /** Messages delivered but not yet acked, at most. */
  maxAckPending: Schema.optional(Limit),
  /** Pending pull requests, at most. */
  maxWaiting: Schema.optional(PositiveInt),
  /** Largest batch a pull may ask for. */
  maxBatch: Schema.optional(PositiveInt),
  /** Longest expiry a pull may ask for. */
  maxExpires: Schema.optional(ServerDuration),
  /** An ephemeral consumer is removed after this long without activity. */
  inactiveThreshold: Schema.optional(ServerDuration),
  headersOnly: Schema.optional(Schema.Boolean),
  replicas: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 5 }))),
  memoryStorage: Schema.optional(Schema.Boolean)
})

/**
 * A consumer's configuration.
 *
 * @category models
 * @since 0.1.0
 */
export type ConsumerConfig = typeof ConsumerConfig.Type

const deliverToNats = (policy: DeliverPolicy): Partial<NatsConsumerConfig> => {
  switch (policy._tag) {
    case "All":
      return { deliver_policy: "all" }
    case "Last":
      return { deliver_policy: "last" }
    case "New":
      return { deliver_policy: "new" }
    case "LastPerSubject":
      return { deliver_policy: "last_per_subject" }
    case "StartSequence":
      return { deliver_policy: "by_start_sequence", opt_start_seq: policy.sequence }
    case "StartTime":
      return { deliver_policy: "by_start_time", opt_start_time: policy.time.toISOString() }
  }
}

/**
 * The nats.js (wire) form of a configuration: snake_case, durations in
 * nanoseconds. `ackPolicy` defaults to `explicit`; other unset fields are
 * left out.
 *
 * @category conversions
 * @since 0.1.0
 */
export const toNats = (config: ConsumerConfig): Partial<NatsConsumerConfig> => {
  const out: Record<string, unknown> = { ack_policy: config.ackPolicy ?? "explicit" }
  const set = (key: string, value: unknown) => {
    if (value !== undefined) out[key] = value
  }
  set("durable_name", config.durable)
  set("description", config.description)
  set("filter_subject", config.filterSubject)
  set("ack_wait", config.ackWait === undefined ? undefined : nanos(config.ackWait))
  set("max_deliver", config.maxDeliver)
  set("backoff", config.backoff?.map(nanos))
  set("replay_policy", config.replayPolicy)
  set("max_ack_pending", config.maxAckPending)
  set("max_waiting", config.maxWaiting)
  set("max_batch", config.maxBatch)
  set("max_expires", config.maxExpires === undefined ? undefined : nanos(config.maxExpires))
  set("inactive_threshold", config.inactiveThreshold === undefined ? undefined : nanos(config.inactiveThreshold))
  set("headers_only", config.headersOnly)
  set("num_replicas", config.replicas)
  set("mem_storage", config.memoryStorage)
  return { ...out, ...(config.deliverPolicy === undefined ? {} : deliverToNats(config.deliverPolicy)) }
}
