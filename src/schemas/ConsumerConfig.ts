/**
 * Typed JetStream consumer configuration: durations are `Duration`, enums
 * are literal unions, the start position is a tagged value. Only options that
 * nats-server 2.9 honours are offered (no `filter_subjects`, `metadata`,
 * priority groups, pause).
 *
 * The configuration is declared once, as a Schema: its Type is the typed
 * configuration (camelCase keys, `Duration` values, `DeliverPolicy`), its
 * Encoded side is the nats.js wire shape (snake_case keys, durations in
 * nanoseconds). It is built in two steps: the fields, each with its schema
 * and (`Schema.encodeKeys`) its wire key; then the start position, the one
 * field that is not one wire key, spread over `deliver_policy`,
 * `opt_start_seq` and `opt_start_time`. `toNats` / `fromNats` encode and
 * decode with it, and `diff` (the change detection of
 * `JetStreamManager.createOrUpdateConsumer`) compares field by field.
 *
 * @since 0.1.0
 */
import type { ConsumerConfig as NatsConsumerConfig } from "@nats-io/jetstream"
import type { SchemaAST } from "effect"
import { Effect, Schema, SchemaIssue, SchemaTransformation, Struct } from "effect"
import * as Wire from "../internal/wire.ts"
import { Limit, Name, ServerDurationFromNanos } from "./StreamConfig.ts"
import { validateSubject } from "./Subject.ts"

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

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

/** A subject the server delivers to: no wildcards. */
const DeliverSubject = Schema.String.check(
  Schema.makeFilter(validateSubject, {
    identifier: "DeliverSubject",
    arbitraryConstraint: { patterns: [{ source: "^[a-z0-9_-]+(\\.[a-z0-9_-]+){0,3}$", flags: "" }] }
  })
)

/** A queue group: non-empty, no whitespace. */
const QueueGroup = Schema.String.check(
  Schema.makeFilter(
    (s: string) => s.length > 0 && !/\s/.test(s) ? undefined : "a non-empty queue group, no whitespace",
    {
      identifier: "QueueGroup"
    }
  )
)

/** Every field of a consumer configuration, with its wire key; the start position is still one value here. */
const Fields = Wire.Struct({
  durable: Wire.optional(Name),
  description: Wire.optional(Schema.String),
  /** Only messages on subjects matching this pattern. */
  filterSubject: Wire.optional(Schema.String),
  ackPolicy: Wire.optional(AckPolicy),
  /** Redelivered if not acked within this time. */
  ackWait: Wire.optional(ServerDurationFromNanos),
  /** Deliveries before giving up on a message; -1 is unlimited. */
  maxDeliver: Wire.optional(Limit),
  /** Redelivery delays by delivery count (overrides `ackWait` for redeliveries). */
  backoff: Wire.optional(Schema.Array(ServerDurationFromNanos)),
  deliverPolicy: Wire.optional(DeliverPolicy),
  replayPolicy: Wire.optional(ReplayPolicy),
  /** Messages delivered but not yet acked, at most. */
  maxAckPending: Wire.optional(Limit),
  /** Pending pull requests, at most. */
  maxWaiting: Wire.optional(PositiveInt),
  /** Largest batch a pull may ask for. */
  maxBatch: Wire.optional(PositiveInt),
  /** Longest expiry a pull may ask for. */
  maxExpires: Wire.optional(ServerDurationFromNanos),
  /** An ephemeral consumer is removed after this long without activity. */
  inactiveThreshold: Wire.optional(ServerDurationFromNanos),
  headersOnly: Wire.optional(Schema.Boolean),
  replicas: Wire.optional(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 5 }))),
  memoryStorage: Wire.optional(Schema.Boolean),
  /** Makes it a push consumer: the server sends messages to this subject. */
  deliverSubject: Wire.optional(DeliverSubject),
  /** A push consumer's queue group: each message goes to one member. */
  deliverGroup: Wire.optional(QueueGroup),
  /** Push flow control (needs `idleHeartbeat`). */
  flowControl: Wire.optional(Schema.Boolean),
  /** A push consumer's heartbeat when idle. */
  idleHeartbeat: Wire.optional(ServerDurationFromNanos)
}).pipe(Schema.encodeKeys({
  durable: "durable_name",
  filterSubject: "filter_subject",
  ackPolicy: "ack_policy",
  ackWait: "ack_wait",
  maxDeliver: "max_deliver",
  replayPolicy: "replay_policy",
  maxAckPending: "max_ack_pending",
  maxWaiting: "max_waiting",
  maxBatch: "max_batch",
  maxExpires: "max_expires",
  inactiveThreshold: "inactive_threshold",
  headersOnly: "headers_only",
  replicas: "num_replicas",
  memoryStorage: "mem_storage",
  deliverSubject: "deliver_subject",
  deliverGroup: "deliver_group",
  flowControl: "flow_control",
  idleHeartbeat: "idle_heartbeat"
}))

/** The wire fields of a start position. */
const DeliverPolicyWire = Schema.Struct({
  deliver_policy: Schema.optionalKey(
    Schema.Literals(["all", "last", "new", "last_per_subject", "by_start_sequence", "by_start_time"])
  ),
  opt_start_seq: Schema.optionalKey(Schema.Number),
  opt_start_time: Schema.optionalKey(Schema.String)
})
type DeliverPolicyWire = typeof DeliverPolicyWire.Type

const deliverToWire = (policy: DeliverPolicy): DeliverPolicyWire => {
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

const missing = (key: string, wire: DeliverPolicyWire, options: SchemaAST.ParseOptions) =>
  Effect.fail(new SchemaIssue.InvalidValue({ message: `${wire.deliver_policy} needs ${key}` }, wire, options))

/** The start position of its wire fields; none without `deliver_policy`. */
const deliverFromWire = (
  wire: DeliverPolicyWire,
  options: SchemaAST.ParseOptions
): Effect.Effect<DeliverPolicy | undefined, SchemaIssue.Issue> => {
  switch (wire.deliver_policy) {
    case "all":
      return Effect.succeed({ _tag: "All" })
    case "last":
      return Effect.succeed({ _tag: "Last" })
    case "new":
      return Effect.succeed({ _tag: "New" })
    case "last_per_subject":
      return Effect.succeed({ _tag: "LastPerSubject" })
    case "by_start_sequence":
      return wire.opt_start_seq === undefined
        ? missing("opt_start_seq", wire, options)
        : Effect.succeed({ _tag: "StartSequence", sequence: wire.opt_start_seq })
    case "by_start_time":
      return wire.opt_start_time === undefined
        ? missing("opt_start_time", wire, options)
        : Effect.succeed({ _tag: "StartTime", time: new Date(wire.opt_start_time) })
    default:
      return Effect.succeed(undefined)
  }
}

/** The wire shape: every field under its wire key, the start position spread over its wire fields. */
const ConsumerConfigWire = Fields.from.mapFields((fields) => ({
  ...Struct.omit(fields, ["deliverPolicy"]),
  ...DeliverPolicyWire.fields
}))
const deliverKeys = Struct.keys(DeliverPolicyWire.fields)

/**
 * A consumer's configuration. A `durable` name makes it durable; without one
 * the server names it and removes it after `inactiveThreshold`. A
 * `deliverSubject` makes it a push consumer. Unset fields take the server's
 * defaults (and are left out on the wire; `toNats` sets `ackPolicy` to
 * `explicit` when unset).
 *
 * Type: `{ durable?, ackWait?: Duration, deliverPolicy?: DeliverPolicy, ... }`;
 * Encoded (nats.js): `{ durable_name?, ack_wait?: nanoseconds,
 * deliver_policy?, opt_start_seq?, opt_start_time?: ISO string, ... }`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ConsumerConfig = ConsumerConfigWire.pipe(Schema.decodeTo(
  Fields,
  SchemaTransformation.transformEffect<typeof Fields.Encoded, typeof ConsumerConfigWire.Type>({
    decode: (wire, options) =>
      Effect.map(deliverFromWire(wire, options), (deliverPolicy) => {
        const rest = Struct.omit(wire, deliverKeys)
        return deliverPolicy === undefined ? rest : { ...rest, deliverPolicy }
      }),
    encode: ({ deliverPolicy, ...rest }) =>
      Effect.succeed(deliverPolicy === undefined ? rest : { ...rest, ...deliverToWire(deliverPolicy) })
  })
))

/**
 * A consumer's configuration.
 *
 * @category models
 * @since 0.1.0
 */
export type ConsumerConfig = typeof ConsumerConfig.Type

const encode = Schema.encodeSync(ConsumerConfig)
const decode = Schema.decodeUnknownSync(ConsumerConfig)

/**
 * The nats.js (wire) form of a configuration: snake_case, durations in
 * nanoseconds. `ackPolicy` defaults to `explicit`; other unset fields are
 * left out. It converts and does not validate (decode the input with
 * `Schema.toType(ConsumerConfig)` for that).
 *
 * @category conversions
 * @since 0.1.0
 */
export const toNats = (config: ConsumerConfig): Partial<NatsConsumerConfig> => {
  const { backoff, ...wire } = encode(config, { disableChecks: true })
  return { ack_policy: "explicit", ...wire, ...(backoff === undefined ? {} : { backoff: [...backoff] }) }
}

const isAckPolicy = Schema.is(AckPolicy)

const deliverPolicies: ReadonlyArray<string> = [
  "all",
  "last",
  "new",
  "last_per_subject",
  "by_start_sequence",
  "by_start_time"
]

/**
 * A server's configuration made readable: fields reported as `null` are
 * left out, and a start position this module does not know, or one without
 * its sequence or time, reads as its nearest meaning (all messages; sequence
 * 1; the epoch).
 */
const readable = (config: NatsConsumerConfig): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(config)) if (value !== null) out[key] = value
  if (typeof out["deliver_policy"] === "string" && !deliverPolicies.includes(out["deliver_policy"])) {
    out["deliver_policy"] = "all"
  }
  if (out["deliver_policy"] === "by_start_sequence") out["opt_start_seq"] ??= 1
  if (out["deliver_policy"] === "by_start_time") out["opt_start_time"] ??= new Date(0).toISOString()
  return out
}

/**
 * The typed form of a configuration read from the server. The server is
 * trusted: its values are decoded without the checks user input gets. Fields
 * it leaves out stay out, except the booleans it leaves out when `false`
 * (`headersOnly`, `memoryStorage`, `flowControl`), which read back as
 * `false`; an `ackPolicy` this module does not know reads back as
 * `explicit`, a start position it does not know as all messages. Throws when
 * the server reports a value of another type (`JetStreamManager` turns that
 * into a `NatsError`).
 *
 * @category conversions
 * @since 0.1.0
 */
export const fromNats = (config: NatsConsumerConfig): ConsumerConfig => {
  const ackPolicy = isAckPolicy(config.ack_policy) ? config.ack_policy : "explicit"
  const typed = decode({ ...readable(config), ack_policy: ackPolicy }, { disableChecks: true })
  return {
    ...typed,
    headersOnly: typed.headersOnly ?? false,
    memoryStorage: typed.memoryStorage ?? false,
    flowControl: typed.flowControl ?? false
  }
}

/**
 * The fields set in `requested` whose value differs from the `current`
 * configuration (as read back from the server), in field order: the change
 * detection of `JetStreamManager.createOrUpdateConsumer`. Each field is
 * compared with its schema's equivalence; a field the server leaves out of
 * `current` equals a requested zero value (`""`, `false`, `0`, `[]`, zero
 * duration).
 *
 * @category comparisons
 * @since 0.1.0
 */
export const diff: (
  requested: ConsumerConfig,
  current: ConsumerConfig
) => ReadonlyArray<keyof ConsumerConfig & string> = Wire.diff(Fields.to.fields)
