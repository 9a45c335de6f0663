/**
 * The core of a connection: the parts every service builds on, made once per
 * connection by `NatsClient` and handed to the other services explicitly
 * (`NatsClient.core`), never through module-level state.
 *
 * A service that needs the connection takes the core from the `NatsClient`
 * and uses its parts instead of its own copies: the request mux (requests
 * and JetStream publishes share one inbox), the validation (one subject
 * cache, one payload limit), the subscription bridge's hooks (slow consumer
 * events, the client's release) and the server's capabilities.
 *
 * @internal
 */
import type { NatsConnection } from "@nats-io/nats-core"
import { Effect } from "effect"
import type * as NatsError from "../schemas/NatsError.ts"

import type { Connection } from "./connection.ts"
import { fromUnknown } from "./errors.ts"
import * as RequestMux from "./requestMux.ts"
import { supportsTermReason } from "./serverVersion.ts"
import type { BridgeHooks } from "./subscription.ts"
import * as Validation from "./validation.ts"

/** The shared parts of one connection. */
export interface NatsCore {
  /** The raw nats.js connection. */
  readonly connection: NatsConnection
  /** The prefix of the connection's inboxes (the `inboxPrefix` option; nats.js' `_INBOX` when unset). */
  readonly inboxPrefix: string | undefined
  /** Requests (and JetStream publishes) over the connection's shared inbox. */
  readonly requests: RequestMux.RequestMux
  /** Checks of subjects, patterns, queues, counts and message sizes. */
  readonly validation: Validation.Validation
  /** What the subscription bridge reports to, and asks of, the client. */
  readonly bridge: BridgeHooks
  /** A round trip to the server: everything sent before it was processed. */
  readonly flush: Effect.Effect<void, NatsError.NatsError>
  /** Whether the server records the reason of a `term` (2.11+; older servers ignore such a `+TERM`). */
  readonly termReasons: () => boolean
  /** Whether the server the connection is on has JetStream (its `INFO` says so). */
  readonly jetstream: () => boolean
  /** Listens to the publishes the server refused (permission violations); returns the removal. */
  readonly onPublishRefused: (listener: (subject: string, cause: unknown) => void) => () => void
  /** Listens to the connection's drops (before the first redial); returns the removal. */
  readonly onDisconnected: (listener: () => void) => () => void
}

/** The core of an open connection. */
export const make = (connection: Connection): NatsCore => {
  const nc = connection.nc
  const requests = RequestMux.make(nc, connection.inboxPrefix)
  // a request to a subject the user may not publish to fails at once, not by timeout
  connection.onPublishRefused(requests.refused)
  // a request whose reply was lost with the connection fails at once, not by timeout
  connection.onDisconnected(requests.disconnected)
  return {
    connection: nc,
    inboxPrefix: connection.inboxPrefix,
    requests,
    validation: Validation.make(() => nc.info?.max_payload ?? 1024 * 1024),
    bridge: {
      onSlowConsumer: (subject, dropped, bufferSize) =>
        connection.emit({ _tag: "SlowConsumer", subject, dropped, bufferSize }),
      isReleasing: connection.isReleasing,
      isConnected: connection.isConnected
    },
    flush: Effect.tryPromise({
      try: () => nc.flush(),
      catch: (cause) => fromUnknown(cause, { operation: "flush" })
    }),
    termReasons: () => supportsTermReason(nc.info?.version),
    jetstream: () => nc.info?.jetstream === true,
    onPublishRefused: connection.onPublishRefused,
    onDisconnected: connection.onDisconnected
  }
}
