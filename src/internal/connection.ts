/**
 * The connection's life: connect (the first connect retried by a Schedule,
 * within an overall timeout), reconnect delays from a Schedule, nats.js
 * status notifications turned into `ConnectionEvent`s, the end of the
 * connection as a `Deferred`, and drain-then-close on release.
 *
 * @internal
 */
import type { ConnectionOptions, NatsConnection } from "@nats-io/nats-core"
import { credsAuthenticator, nkeyAuthenticator } from "@nats-io/nats-core"
import { connect as natsConnect } from "@nats-io/transport-node"
import { Deferred, Duration, Effect, Exit, Option, PubSub, Redacted, Schedule, Stream } from "effect"
import type * as Auth from "../schemas/Auth.ts"
import type { ConnectionEvent } from "../schemas/ConnectionEvent.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import type { NatsClientOptions } from "../services/NatsClient.ts"
import * as ConnectionEvents from "./connectionEvents.ts"
import { millis } from "./duration.ts"
import { connectionClosed, fromUnknown, timeout } from "./errors.ts"
import type { ReconnectDriver } from "./reconnect.ts"
import { makeReconnectDriver } from "./reconnect.ts"

/** An open connection and what the client needs to know about its life. */
export interface Connection {
  readonly nc: NatsConnection
  readonly inboxPrefix: string | undefined
  /** Lifecycle events (sliding: a slow reader loses the oldest); shut down after `Closed`. */
  readonly events: PubSub.PubSub<ConnectionEvent>
  /** Publishes an event (and logs it, unless `logEvents` is off). */
  readonly emit: (event: ConnectionEvent) => void
  /** Done when the connection closes: failed with `ConnectionClosed` unless the client itself closed it. */
  readonly closed: Deferred.Deferred<void, NatsError.NatsError>
  /** Whether the client itself is closing the connection (release or `drain`). */
  readonly isReleasing: () => boolean
  /** Drains and closes now. */
  readonly drain: Effect.Effect<void, NatsError.NatsError>
}

/**
 * The default first-connect schedule: 4 quick exponential retries from 100 ms.
 */
export const defaultConnectSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis").pipe(
  Schedule.upTo({ times: 4 })
)

/**
 * The default reconnect schedule: exponential from 250 ms, capped at 5 s,
 * jittered, for up to 120 attempts.
 */
export const defaultReconnectSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("250 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(5)))),
  Schedule.jittered,
  Schedule.upTo({ times: 120 })
)

const encoder = new TextEncoder()

const authOptions = (auth: Auth.Auth | undefined): Partial<ConnectionOptions> => {
  if (auth === undefined) return {}
  switch (auth._tag) {
    case "UserPassword":
      return { user: auth.user, pass: Redacted.value(auth.password) }
    case "Token":
      return { token: Redacted.value(auth.token) }
    case "NKey":
      return { authenticator: nkeyAuthenticator(encoder.encode(Redacted.value(auth.seed))) }
    case "Creds":
      return { authenticator: credsAuthenticator(encoder.encode(Redacted.value(auth.creds))) }
  }
}

/** The server URLs of the options: a list, or one comma-separated string. */
export const serversOf = (servers: NatsClientOptions["servers"]): Array<string> =>
  servers === undefined
    ? ["nats://127.0.0.1:4222"]
    : typeof servers === "string"
    ? servers.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
    : [...servers]

/** The nats.js options: the user's, with the ones this client manages set last. */
const natsOptions = (
  options: NatsClientOptions,
  servers: Array<string>,
  driver: ReconnectDriver,
  onDial: () => void
): ConnectionOptions => ({
  // nats.js would capture the caller's stack in an Error per request (a
  // fifth of a request's CPU): effect-nats' errors name the operation and
  // subject, and Effect's spans locate the call. `connectionOptions` may
  // turn it back on.
  noAsyncTraces: true,
  ...options.connectionOptions,
  servers,
  ...(options.name === undefined ? {} : { name: options.name }),
  ...(options.noEcho === undefined ? {} : { noEcho: options.noEcho }),
  ...(options.pingInterval === undefined ? {} : { pingInterval: millis(options.pingInterval) }),
  ...authOptions(options.auth),
  timeout: millis(options.connectAttemptTimeout ?? "3 seconds"),
  // first connect: retried here, by a Schedule (nats.js' own retry can hang forever)
  waitOnFirstConnect: false,
  reconnect: true,
  maxReconnectAttempts: -1,
  reconnectDelayHandler: driver.reconnectDelayHandler,
  reconnectToServer: () => {
    driver.onDial()
    onDial()
    return null
  }
})

const closeQuietly = (nc: NatsConnection | undefined): void => {
  if (nc !== undefined && !nc.isClosed()) void nc.close().catch(() => undefined)
}

/** One connect attempt; an attempt interrupted after it succeeded closes its connection. */
const connectOnce = (options: ConnectionOptions, connected: (nc: NatsConnection) => void) =>
  Effect.callback<NatsConnection, NatsError.NatsError>((resume, signal) => {
    natsConnect(options).then(
      (nc) => {
        if (signal.aborted) closeQuietly(nc)
        else {
          connected(nc)
          resume(Effect.succeed(nc))
        }
      },
      (cause) => resume(Effect.fail(fromUnknown(cause, { operation: "connect" })))
    )
  })

/** Drains within `drainTimeout`, then closes. Never fails. */
const drainAndClose = (nc: NatsConnection, drainTimeout: Duration.Input) =>
  Effect.gen(function*() {
    if (nc.isClosed()) return
    const drained = yield* Effect.tryPromise(() => nc.drain()).pipe(Effect.timeoutOption(drainTimeout), Effect.exit)
    if (Exit.isFailure(drained) || Option.isNone(drained.value)) {
      yield* Effect.logWarning("nats: drain did not complete in time; closing the connection")
    }
    yield* Effect.promise(() => nc.close().catch(() => undefined))
  })

/**
 * Connects in the current scope (the first connect retried by
 * `connectSchedule`, only for retryable failures, within `connectTimeout`);
 * the scope's release drains (bounded by `drainTimeout`) and closes.
 */
export const connect = Effect.fnUntraced(function*(options: NatsClientOptions) {
  const servers = serversOf(options.servers)
  const events = yield* PubSub.sliding<ConnectionEvent>(1024)
  const logEvents = options.logEvents ?? true
  // Events are logged with the caller's services (its Logger, log level, annotations).
  const context = yield* Effect.context<never>()
  const runFork = Effect.runForkWith(context)
  const emit = (event: ConnectionEvent) => {
    PubSub.publishUnsafe(events, event)
    if (logEvents) runFork(ConnectionEvents.log(event))
  }

  let releasing = false
  let current: NatsConnection | undefined
  const driver = makeReconnectDriver({
    schedule: options.reconnectSchedule ?? defaultReconnectSchedule,
    context,
    // the schedule has ended: close the connection for good
    onExhausted: () => {
      const nc = current
      if (nc !== undefined) queueMicrotask(() => closeQuietly(nc))
    },
    onStepFailure: (cause) =>
      runFork(Effect.logError("nats: the reconnect schedule failed; waiting 2 seconds instead", cause))
  })
  // Emitted on the dial, synchronously, so that the attempt number is exact
  // (the status iterator's "reconnecting" arrives later and per address).
  const nats = natsOptions(options, servers, driver, () => {
    if (current !== undefined) emit({ _tag: "Reconnecting", attempt: driver.attempt() })
  })

  const connectTimeout = options.connectTimeout ?? "15 seconds"
  const nc = yield* Effect.acquireRelease(
    connectOnce(nats, (nc) => {
      current = nc
    }).pipe(
      Effect.retry({
        schedule: options.connectSchedule ?? defaultConnectSchedule,
        while: (error) => error.isRetryable
      }),
      Effect.timeoutOrElse({
        duration: connectTimeout,
        orElse: () =>
          Effect.fail(timeout(
            "connect",
            `could not connect to ${servers.join(", ")} within ${
              Duration.format(Duration.fromInputUnsafe(connectTimeout))
            }`,
            { timeoutMillis: millis(connectTimeout) }
          ))
      }),
      Effect.tap(() => Effect.sync(() => driver.reset())),
      // interrupted after a connect succeeded but before the finalizer was registered
      Effect.onInterrupt(() => Effect.sync(() => closeQuietly(current)))
    ),
    (nc) =>
      Effect.suspend(() => {
        releasing = true
        return drainAndClose(nc, options.drainTimeout ?? "10 seconds")
      }),
    // the first connect (retries included) can be interrupted
    { interruptible: true }
  )

  yield* Effect.forkScoped(watchStatus(nc, driver, emit))

  // The end of the connection: the `Closed` event (the last one: streams of
  // events end after it), then `closed` is done.
  const closed = yield* Deferred.make<void, NatsError.NatsError>()
  nc.closed().then((err) => {
    const message = releasing
      ? undefined
      : err instanceof Error
      ? `closed: ${err.message}`
      : "closed: reconnect attempts exhausted or closed outside the layer"
    emit(message === undefined ? { _tag: "Closed" } : { _tag: "Closed", message })
    runFork(PubSub.shutdown(events))
    Deferred.doneUnsafe(
      closed,
      message === undefined ? Exit.void : Exit.fail(connectionClosed("connection", `connection ${message}`))
    )
  })

  const drain = Effect.suspend(() => {
    releasing = true
    return nc.isClosed() ? Effect.void : Effect.tryPromise({
      try: () => nc.drain(),
      catch: (cause) => fromUnknown(cause, { operation: "drain" })
    })
  })

  return {
    nc,
    inboxPrefix: nats.inboxPrefix,
    events,
    emit,
    closed,
    isReleasing: () => releasing,
    drain
  } satisfies Connection
})

/** nats.js status notifications become events; a reconnect resets the reconnect schedule. */
const watchStatus = (nc: NatsConnection, driver: ReconnectDriver, emit: (event: ConnectionEvent) => void) =>
  Stream.fromAsyncIterable(nc.status(), (cause) => cause).pipe(
    Stream.runForEach((status) =>
      Effect.sync(() => {
        if (status.type === "reconnect") driver.reset()
        const event = ConnectionEvents.fromStatus(status)
        if (event !== undefined) emit(event)
      })
    ),
    Effect.catchCause((cause) => Effect.logDebug("nats: the status iterator ended with a failure", cause))
  )
