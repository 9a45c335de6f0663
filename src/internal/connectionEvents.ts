/**
 * Connection lifecycle events: from nats.js status notifications, and to
 * Effect's Logger.
 *
 * @internal
 */
import type { Status } from "@nats-io/nats-core"
import { Effect } from "effect"
import type { ConnectionEvent } from "../schemas/ConnectionEvent.ts"

/**
 * The event of a nats.js status, if it has one. `reconnecting` and `close`
 * have none: the reconnect hook emits `Reconnecting` with the exact attempt,
 * and `Closed` is emitted when the connection's `closed()` resolves, with its
 * reason.
 */
export const fromStatus = (status: Status): ConnectionEvent | undefined => {
  switch (status.type) {
    case "disconnect":
      return { _tag: "Disconnected", server: status.server }
    case "reconnect":
      return { _tag: "Reconnected", server: status.server }
    case "update":
      return { _tag: "ServersUpdated", added: status.added ?? [], deleted: status.deleted ?? [] }
    case "ldm":
      return { _tag: "LameDuck", server: status.server }
    case "error":
      return { _tag: "ServerError", message: status.error.message }
    case "staleConnection":
      return { _tag: "StaleConnection" }
    case "slowConsumer":
      return { _tag: "SlowConsumer", subject: status.sub.getSubject(), dropped: status.pending, bufferSize: 0 }
    case "reconnecting":
    case "close":
    case "ping":
    case "forceReconnect":
      return undefined
  }
}

const text = (event: ConnectionEvent): string => {
  switch (event._tag) {
    case "Disconnected":
      return `nats: disconnected from ${event.server}`
    case "Reconnecting":
      return `nats: reconnecting (attempt ${event.attempt})`
    case "Reconnected":
      return `nats: reconnected to ${event.server}`
    case "ServersUpdated":
      return `nats: servers updated (added: ${event.added.join(",")}; deleted: ${event.deleted.join(",")})`
    case "LameDuck":
      return `nats: server ${event.server} entered lame duck mode`
    case "SlowConsumer":
      return `nats: slow consumer on ${event.subject}: buffer of ${event.bufferSize} full, ${event.dropped} dropped so far`
    case "ServerError":
      return `nats: server error: ${event.message}`
    case "StaleConnection":
      return "nats: stale connection"
    case "Closed":
      return `nats: connection closed${event.message ? `: ${event.message}` : ""}`
  }
}

const levels = {
  Disconnected: Effect.logWarning,
  Reconnecting: Effect.logDebug,
  Reconnected: Effect.logInfo,
  ServersUpdated: Effect.logDebug,
  LameDuck: Effect.logWarning,
  SlowConsumer: Effect.logWarning,
  ServerError: Effect.logError,
  StaleConnection: Effect.logWarning,
  Closed: Effect.logInfo
} as const

/** Logs an event at its level, annotated with `event: <tag>`. */
export const log = (event: ConnectionEvent): Effect.Effect<void> =>
  levels[event._tag](text(event)).pipe(Effect.annotateLogs({ event: event._tag }))

/**
 * A user's event handler, made safe to fork for every event: a failure or a
 * defect of it is logged, never lost and never fatal to the connection.
 */
export const handler = (
  onEvent: (event: ConnectionEvent) => Effect.Effect<void, unknown>
) =>
(event: ConnectionEvent): Effect.Effect<void> =>
  Effect.suspend(() => onEvent(event)).pipe(
    Effect.catchCause((cause) =>
      Effect.logError(`nats: the onEvent handler failed on ${event._tag}`, cause).pipe(
        Effect.annotateLogs({ event: event._tag })
      )
    )
  )
