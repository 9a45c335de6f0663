/**
 * Connection lifecycle events, as a tagged union with a Schema.
 *
 * `NatsClient.events` streams these; by default each one is also logged
 * through Effect's Logger.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The connection to `server` was lost; the client starts reconnecting.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Disconnected = Schema.TaggedStruct("Disconnected", { server: Schema.String })

/**
 * A reconnect attempt is starting (`attempt` counts from 1 since the last
 * disconnect).
 *
 * @category schemas
 * @since 0.1.0
 */
export const Reconnecting = Schema.TaggedStruct("Reconnecting", { attempt: Schema.Number })

/**
 * The client reconnected to `server`; core subscriptions are restored.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Reconnected = Schema.TaggedStruct("Reconnected", { server: Schema.String })

/**
 * The cluster told the client about servers that joined or left.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ServersUpdated = Schema.TaggedStruct("ServersUpdated", {
  added: Schema.Array(Schema.String),
  deleted: Schema.Array(Schema.String)
})

/**
 * The server entered lame duck mode: it will shut down soon, and the client
 * should expect to move to another server.
 *
 * @category schemas
 * @since 0.1.0
 */
export const LameDuck = Schema.TaggedStruct("LameDuck", { server: Schema.String })

/**
 * A subscription could not keep up: its bounded buffer was full and messages
 * were dropped (or the subscription failed, under the `"fail"` policy).
 * `dropped` counts the messages dropped so far by that subscription. An
 * overflow is reported when it starts, every second while it lasts, and
 * when it ends (the buffer takes messages again, or the subscription ends)
 * if more were dropped meanwhile: a subscription's last `SlowConsumer`
 * event has its total.
 *
 * @category schemas
 * @since 0.1.0
 */
export const SlowConsumer = Schema.TaggedStruct("SlowConsumer", {
  subject: Schema.String,
  dropped: Schema.Number,
  bufferSize: Schema.Number
})

/**
 * The server reported an error (for example a permission violation).
 *
 * @category schemas
 * @since 0.1.0
 */
export const ServerError = Schema.TaggedStruct("ServerError", { message: Schema.String })

/**
 * The server stopped answering pings; the client will reconnect.
 *
 * @category schemas
 * @since 0.1.0
 */
export const StaleConnection = Schema.TaggedStruct("StaleConnection", {})

/**
 * The connection closed for good (drained on release, closed by the user, or
 * reconnects gave up).
 *
 * @category schemas
 * @since 0.1.0
 */
export const Closed = Schema.TaggedStruct("Closed", { message: Schema.optional(Schema.String) })

/**
 * Schema of every connection event.
 *
 * @category schemas
 * @since 0.1.0
 */
export const ConnectionEvent = Schema.Union([
  Disconnected,
  Reconnecting,
  Reconnected,
  ServersUpdated,
  LameDuck,
  SlowConsumer,
  ServerError,
  StaleConnection,
  Closed
])

/**
 * A connection lifecycle event.
 *
 * @category models
 * @since 0.1.0
 */
export type ConnectionEvent = typeof ConnectionEvent.Type
