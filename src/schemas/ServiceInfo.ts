/**
 * The discovery messages of NATS services (the "micro" protocol every
 * official client implements): what an instance answers on
 * `$SRV.PING|INFO|STATS[.<name>[.<id>]]`. Fields are camelCase here and
 * snake_case on the wire (`num_requests`, `queue_group`...), as the protocol
 * has them.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The `type` of each discovery answer.
 *
 * @category constants
 * @since 0.1.0
 */
export const ResponseType = {
  ping: "io.nats.micro.v1.ping_response",
  info: "io.nats.micro.v1.info_response",
  stats: "io.nats.micro.v1.stats_response"
} as const

const Metadata = Schema.optionalKey(Schema.NullOr(Schema.Record(Schema.String, Schema.String)))

const identity = {
  name: Schema.String,
  id: Schema.String,
  version: Schema.String,
  metadata: Metadata
}

/**
 * An instance's answer to `$SRV.PING`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Ping = Schema.Struct({ type: Schema.Literal(ResponseType.ping), ...identity })

/**
 * @category models
 * @since 0.1.0
 */
export type Ping = typeof Ping.Type

/**
 * An endpoint as `$SRV.INFO` describes it.
 *
 * @category schemas
 * @since 0.1.0
 */
export const EndpointInfo = Schema.Struct({
  name: Schema.String,
  subject: Schema.String,
  queueGroup: Schema.optionalKey(Schema.String),
  metadata: Metadata
}).pipe(Schema.encodeKeys({ queueGroup: "queue_group" }))

/**
 * @category models
 * @since 0.1.0
 */
export type EndpointInfo = typeof EndpointInfo.Type

/**
 * An instance's answer to `$SRV.INFO`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Info = Schema.Struct({
  type: Schema.Literal(ResponseType.info),
  ...identity,
  description: Schema.optionalKey(Schema.String),
  endpoints: Schema.Array(EndpointInfo)
})

/**
 * @category models
 * @since 0.1.0
 */
export type Info = typeof Info.Type

/**
 * An endpoint's counters as `$SRV.STATS` reports them (times in
 * nanoseconds).
 *
 * @category schemas
 * @since 0.1.0
 */
export const EndpointStats = Schema.Struct({
  name: Schema.String,
  subject: Schema.String,
  queueGroup: Schema.optionalKey(Schema.String),
  numRequests: Schema.Number,
  numErrors: Schema.Number,
  lastError: Schema.optionalKey(Schema.String),
  processingTime: Schema.Number,
  averageProcessingTime: Schema.Number,
  data: Schema.optionalKey(Schema.Unknown)
}).pipe(Schema.encodeKeys({
  queueGroup: "queue_group",
  numRequests: "num_requests",
  numErrors: "num_errors",
  lastError: "last_error",
  processingTime: "processing_time",
  averageProcessingTime: "average_processing_time"
}))

/**
 * @category models
 * @since 0.1.0
 */
export type EndpointStats = typeof EndpointStats.Type

/**
 * An instance's answer to `$SRV.STATS`: when it started (ISO 8601) and each
 * endpoint's counters.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Stats = Schema.Struct({
  type: Schema.Literal(ResponseType.stats),
  ...identity,
  started: Schema.String,
  endpoints: Schema.Array(EndpointStats)
})

/**
 * @category models
 * @since 0.1.0
 */
export type Stats = typeof Stats.Type
