/**
 * Typed JetStream stream configuration: durations are `Duration`, sizes are
 * numbers of bytes, enums are literal unions. Only options that nats-server
 * 2.9 honours are offered (no `metadata`, `compression`, per-message TTL).
 *
 * The configuration is declared once, as a Schema: its Type is the typed
 * configuration (camelCase keys, `Duration` values), its Encoded side is the
 * nats.js wire shape (snake_case keys, durations in nanoseconds). Each field
 * names its schema; `Schema.encodeKeys` gives the fields whose wire key
 * differs. `toNats` / `fromNats` encode and decode with it, and `diff` (the
 * change detection of `JetStreamManager.createOrUpdateStream`) compares
 * field by field with each field's equivalence.
 *
 * @since 0.1.0
 */
import type { StreamConfig as NatsStreamConfig } from "@nats-io/jetstream"
import { Duration, Schema, SchemaGetter, SchemaTransformation } from "effect"
import { fromNanos, nanos } from "../internal/duration.ts"
import * as Wire from "../internal/wire.ts"

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
    { identifier: "Name", arbitraryConstraint: { patterns: [{ source: "^[A-Za-z0-9_-]{1,32}$", flags: "" }] } }
  )
)

/**
 * A duration for the server: finite, not negative, and below 2^63
 * nanoseconds (about 292 years; the server keeps a signed 64-bit number of
 * nanoseconds and refuses more as invalid JSON). Generated values (for
 * property tests) are whole nanoseconds up to `Number.MAX_SAFE_INTEGER`
 * (about 104 days), which the wire's nanosecond numbers carry exactly.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ServerDuration = Schema.Duration.annotate({
  toCodecArbitrary: () =>
    Schema.link<Duration.Duration>()(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)), {
      decode: SchemaGetter.transform(fromNanos),
      encode: SchemaGetter.transform(nanos)
    })
}).check(
  Schema.makeFilter(
    (d: Duration.Duration) =>
      Duration.isFinite(d) && !Duration.isNegative(d) && nanos(d) < 2 ** 63
        ? undefined
        : "a duration that is finite, not negative and below 2^63 nanoseconds",
    { identifier: "ServerDuration" }
  )
)

/**
 * A `ServerDuration` as JetStream's wire carries it: a number of nanoseconds.
 * Beyond `Number.MAX_SAFE_INTEGER` nanoseconds (about 104 days) the number is
 * the nearest one a JavaScript number holds (whole seconds and milliseconds
 * stay exact far beyond that).
 *
 * @category schemas
 * @since 0.1.0
 */
export const ServerDurationFromNanos = Schema.Finite.pipe(
  Schema.decodeTo(ServerDuration, SchemaTransformation.transform({ decode: fromNanos, encode: nanos }))
)

/**
 * A limit: a positive integer, or -1 for unlimited. Zero is refused: the
 * server would store it as unlimited, the opposite of what it says.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Limit = Schema.Int.check(
  Schema.makeFilter(
    (n: number) => n === -1 || n >= 1 ? undefined : "a positive limit, or -1 for unlimited (0 would mean unlimited)",
    { identifier: "Limit" }
  )
)

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
 * A stream's configuration. Unset fields take the server's defaults (and are
 * left out on the wire).
 *
 * Type: `{ name, subjects, maxAge?: Duration, ... }`; Encoded (nats.js):
 * `{ name, subjects, max_age?: nanoseconds, num_replicas?, ... }`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const StreamConfig = Wire.Struct({
  name: Name,
  subjects: Schema.Array(Schema.String),
  description: Wire.optional(Schema.String),
  retention: Wire.optional(Retention),
  storage: Wire.optional(Storage),
  replicas: Wire.optional(Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 5 }))),
  /** Oldest message kept; zero means no age limit. */
  maxAge: Wire.optional(ServerDurationFromNanos),
  /** Total size in bytes; -1 is unlimited. */
  maxBytes: Wire.optional(Limit),
  maxMsgs: Wire.optional(Limit),
  maxMsgsPerSubject: Wire.optional(Limit),
  /** Largest message in bytes; -1 is unlimited. At most 2^31 - 1 (the server keeps a 32-bit number). */
  maxMsgSize: Wire.optional(Limit.check(Schema.isLessThanOrEqualTo(2 ** 31 - 1))),
  maxConsumers: Wire.optional(Limit),
  discard: Wire.optional(Discard),
  discardNewPerSubject: Wire.optional(Schema.Boolean),
  /** Window in which a repeated `msgId` is a duplicate (default 2 minutes). */
  duplicateWindow: Wire.optional(ServerDurationFromNanos),
  denyDelete: Wire.optional(Schema.Boolean),
  denyPurge: Wire.optional(Schema.Boolean),
  allowRollup: Wire.optional(Schema.Boolean),
  allowDirect: Wire.optional(Schema.Boolean),
  noAck: Wire.optional(Schema.Boolean)
}).pipe(Schema.encodeKeys({
  replicas: "num_replicas",
  maxAge: "max_age",
  maxBytes: "max_bytes",
  maxMsgs: "max_msgs",
  maxMsgsPerSubject: "max_msgs_per_subject",
  maxMsgSize: "max_msg_size",
  maxConsumers: "max_consumers",
  discardNewPerSubject: "discard_new_per_subject",
  duplicateWindow: "duplicate_window",
  denyDelete: "deny_delete",
  denyPurge: "deny_purge",
  allowRollup: "allow_rollup_hdrs",
  allowDirect: "allow_direct",
  noAck: "no_ack"
}))

/**
 * A stream's configuration.
 *
 * @category models
 * @since 0.1.0
 */
export type StreamConfig = typeof StreamConfig.Type

const encode = Schema.encodeSync(StreamConfig)
const decode = Schema.decodeUnknownSync(StreamConfig)

/**
 * The nats.js (wire) form of a configuration: snake_case, durations in
 * nanoseconds. Unset fields are left out. It converts and does not validate
 * (decode the input with `Schema.toType(StreamConfig)` for that).
 *
 * @category conversions
 * @since 0.1.0
 */
export const toNats = (config: StreamConfig): Partial<NatsStreamConfig> & { name: string } => {
  const wire = encode(config, { disableChecks: true })
  return { ...wire, subjects: [...wire.subjects] }
}

/**
 * The typed form of a configuration read from the server. The server is
 * trusted: its values are decoded without the checks user input gets. Fields
 * it leaves out stay out, except the booleans it leaves out when `false`
 * (`discardNewPerSubject`, `noAck`), which read back as `false`, and
 * `subjects` (empty, e.g. for a mirror); fields reported as `null` are left
 * out. Throws when the server reports a value of another type
 * (`JetStreamManager` turns that into a `NatsError`).
 *
 * @category conversions
 * @since 0.1.0
 */
export const fromNats = (config: NatsStreamConfig): StreamConfig => {
  const present = Object.fromEntries(Object.entries(config).filter(([, value]) => value !== null))
  const typed = decode({ ...present, subjects: config.subjects ?? [] }, { disableChecks: true })
  return { ...typed, discardNewPerSubject: typed.discardNewPerSubject ?? false, noAck: typed.noAck ?? false }
}

/**
 * The fields set in `requested` whose value differs from the `current`
 * configuration (as read back from the server), in field order: the change
 * detection of `JetStreamManager.createOrUpdateStream`. Each field is
 * compared with its schema's equivalence; a field the server leaves out of
 * `current` equals a requested zero value (`""`, `false`, `0`, zero duration).
 *
 * @category comparisons
 * @since 0.1.0
 */
export const diff: (
  requested: StreamConfig,
  current: StreamConfig
) => ReadonlyArray<keyof StreamConfig & string> = Wire.diff(StreamConfig.to.fields)
