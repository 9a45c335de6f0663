/**
 * The connection's life: connect (the first connect retried by a Schedule,
 * within an overall timeout), reconnect delays from a Schedule, nats.js
 * status notifications turned into `ConnectionEvent`s, the end of the
 * connection as a `Deferred`, and drain-then-close on release.
 *
 * @internal
 */
import type { ConnectionOptions, NatsConnection } from "@nats-io/nats-core"
import { errors as natsErrors } from "@nats-io/nats-core"
import { connect as natsConnect } from "@nats-io/transport-node"
import { Deferred, Duration, Effect, Exit, Metric, Option, PubSub, Schedule, Stream } from "effect"
import type { ConnectionEvent } from "../schemas/ConnectionEvent.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import type { NatsClientOptions } from "../services/NatsClient.ts"
import * as ConnectionEvents from "./connectionEvents.ts"
import * as ConnectOptions from "./connectOptions.ts"
import * as Credentials from "./credentials.ts"
import { connectionClosed, fromUnknown, timeout } from "./errors.ts"
import * as Metrics from "./metrics.ts"
import type { ReconnectDriver } from "./reconnect.ts"
import { makeReconnectDriver } from "./reconnect.ts"
import * as TlsOptions from "./tlsOptions.ts"

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
  /** Whether the connection is up (false from a `Disconnected` event to the `Reconnected` that ends it). */
  readonly isConnected: () => boolean
  /** Drains and closes now. */
  readonly drain: Effect.Effect<void, NatsError.NatsError>
  /**
   * Registers a listener of the publishes the server refused (permission
   * violations, which it reports asynchronously on the connection); returns
   * its removal.
   */
  readonly onPublishRefused: (listener: (subject: string, cause: unknown) => void) => () => void
  /**
   * Registers a listener of the connection's drops (called with the
   * `Disconnected` event, before the first redial); returns its removal.
   */
  readonly onDisconnected: (listener: () => void) => () => void
}

/** A set of listeners, each called in turn (one that throws does not stop the others). */
const listeners = <A extends ReadonlyArray<unknown>>() => {
  const set = new Set<(...args: A) => void>()
  return {
    add: (listener: (...args: A) => void) => {
      set.add(listener)
      return () => void set.delete(listener)
    },
    call: (...args: A) => {
      for (const listener of set) {
        try {
          listener(...args)
        } catch {
          // a listener's own failure
        }
      }
    }
  }
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

/** The nats.js options: the user's, with the ones this client manages set last. */
const natsOptions = (
  options: NatsClientOptions,
  resolved: ConnectOptions.Resolved,
  credentials: Credentials.Credentials,
  tls: TlsOptions.NatsTls | undefined,
  driver: ReconnectDriver,
  onDial: () => void,
  report: (text: string) => void
): ConnectionOptions => ({
  // nats.js would capture the caller's stack in an Error per request (a
  // fifth of a request's CPU): effect-nats' errors name the operation and
  // subject, and Effect's spans locate the call. `connectionOptions` may
  // turn it back on.
  noAsyncTraces: true,
  ...options.connectionOptions,
  servers: [...resolved.servers],
  ...(options.name === undefined ? {} : { name: options.name }),
  ...(options.noEcho === undefined ? {} : { noEcho: options.noEcho }),
  ...(resolved.pingInterval === undefined ? {} : { pingInterval: Duration.toMillis(resolved.pingInterval) }),
  ...Credentials.authOptions(credentials.current, credentials.refresh !== undefined, report),
  ...(tls === undefined ? {} : { tls: tls as NonNullable<ConnectionOptions["tls"]> }),
  timeout: Duration.toMillis(resolved.attemptTimeout),
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

/** Servers as a message lists them: the first few. */
const listed = (servers: ReadonlyArray<string>): string =>
  servers.length <= 5 ? servers.join(", ") : `${servers.slice(0, 5).join(", ")} and ${servers.length - 5} more`

const closeQuietly = (nc: NatsConnection | undefined): void => {
  if (nc !== undefined && !nc.isClosed()) void nc.close().catch(() => undefined)
}

/**
 * One connect attempt; an attempt interrupted after it succeeded closes its
 * connection.
 *
 * The attempt is made with nats.js' reconnect off: with it on, a connection
 * that fails after the TLS handshake (a server that requires a client
 * certificate answers TLS 1.3's handshake with an alert) is redialled until
 * the attempt times out, and the TLS error is lost. Reconnecting is turned
 * on as soon as the connection is up: nats.js reads the option (from the
 * options object its connection and protocol share) when it disconnects.
 */
const connectOnce = (options: ConnectionOptions, connected: (nc: NatsConnection) => void) =>
  Effect.callback<NatsConnection, NatsError.NatsError>((resume, signal) => {
    natsConnect({ ...options, reconnect: false }).then(
      (nc) => {
        const shared = (nc as { readonly options?: ConnectionOptions }).options
        if (shared !== undefined) shared.reconnect = options.reconnect ?? true
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
  // the caller's own sources (an auth Effect, certificate files) are bounded by the connect timeout too
  const within = yield* Effect.fromResult(ConnectOptions.connectTimeout(options))
  const auth = yield* Credentials.fromOptions(options.auth, within)
  const resolved = yield* Effect.fromResult(ConnectOptions.resolve(options, auth.first))
  const credentials = auth.follow(resolved.auth)
  const servers = resolved.servers
  const tls = yield* TlsOptions.resolve(options.tls, servers.some((url) => url.startsWith("tls:")), within)
  const events = yield* PubSub.sliding<ConnectionEvent>(1024)
  const logEvents = options.logEvents ?? true
  // Events are logged with the caller's services (its Logger, log level, annotations).
  const context = yield* Effect.context<never>()
  const runFork = Effect.runForkWith(context)
  // Rotating credentials are fetched again when the connection drops: the
  // dials that follow use them (one that comes first may use the old ones).
  const refresh = credentials.refresh?.pipe(
    Effect.catch((error) => Effect.logWarning("nats: fetching the credentials again failed; keeping the last", error))
  )
  const onEvent = options.onEvent === undefined ? undefined : ConnectionEvents.handler(options.onEvent)
  const disconnected = listeners<[]>()
  let up = true
  const emit = (event: ConnectionEvent) => {
    if (event._tag === "Disconnected") {
      up = false
      disconnected.call()
    }
    if (event._tag === "Reconnected") {
      up = true
      runFork(Metric.update(Metrics.reconnects, 1))
    }
    PubSub.publishUnsafe(events, event)
    if (logEvents) runFork(ConnectionEvents.log(event))
    if (onEvent !== undefined) runFork(onEvent(event))
    if (refresh !== undefined && event._tag === "Disconnected") runFork(refresh)
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
  const order = ordered(emit)
  // Emitted on the dial, synchronously, so that the attempt number is exact
  // (the status iterator's "reconnecting" arrives later and per address).
  const nats = natsOptions(options, resolved, credentials, tls, driver, () => {
    if (current !== undefined) order.reconnecting(driver.attempt())
  }, (text) => runFork(Effect.logWarning(text)))

  const connectTimeout = resolved.connectTimeout
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
            `could not connect to ${listed(servers)} within ${Duration.format(connectTimeout)}`,
            { timeoutMillis: Duration.toMillis(connectTimeout) }
          ))
      }),
      Effect.tap((nc) =>
        Effect.sync(() => {
          driver.reset()
          order.connected(nc.getServer())
        })
      ),
      // interrupted after a connect succeeded but before the finalizer was registered
      Effect.onInterrupt(() => Effect.sync(() => closeQuietly(current)))
    ),
    (nc) =>
      Effect.suspend(() => {
        releasing = true
        return drainAndClose(nc, resolved.drainTimeout)
      }),
    // the first connect (retries included) can be interrupted
    { interruptible: true }
  )

  const refused = listeners<[subject: string, cause: unknown]>()
  yield* Effect.forkScoped(watchStatus(nc, driver, order, refused.call))

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
    isConnected: () => up,
    drain,
    onPublishRefused: refused.add,
    onDisconnected: disconnected.add
  } satisfies Connection
})

/** The events of an outage in order: `Disconnected`, then `Reconnecting` (one per dial), then `Reconnected`. */
interface Ordered {
  /** Connected to `server` (the one a `Disconnected` emitted by a dial names). */
  readonly connected: (server: string) => void
  /** A dial: the `Disconnected` it follows is emitted first if nats.js has not reported it yet. */
  readonly reconnecting: (attempt: number) => void
  /** An event of a nats.js status (a late `Disconnected` already emitted is dropped). */
  readonly status: (event: ConnectionEvent) => void
}

/**
 * nats.js runs the reconnect dial hook before its status iterator reports
 * the disconnect that caused it: the first dial of an outage emits the
 * `Disconnected`, and the iterator's own is then dropped.
 */
const ordered = (emit: (event: ConnectionEvent) => void): Ordered => {
  let down = false
  let server = ""
  return {
    connected: (s) => {
      server = s
    },
    reconnecting: (attempt) => {
      if (!down) {
        down = true
        emit({ _tag: "Disconnected", server })
      }
      emit({ _tag: "Reconnecting", attempt })
    },
    status: (event) => {
      if (event._tag === "Disconnected") {
        if (down) return
        down = true
      } else if (event._tag === "Reconnected") {
        down = false
        server = event.server
      }
      emit(event)
    }
  }
}

/**
 * nats.js status notifications become events; a reconnect resets the
 * reconnect schedule; a refused publish is reported to `refused`.
 */
const watchStatus = (
  nc: NatsConnection,
  driver: ReconnectDriver,
  order: Ordered,
  refused: (subject: string, cause: unknown) => void
) =>
  Stream.fromAsyncIterable(nc.status(), (cause) => cause).pipe(
    Stream.runForEach((status) =>
      Effect.sync(() => {
        if (status.type === "reconnect") driver.reset()
        if (
          status.type === "error" && status.error instanceof natsErrors.PermissionViolationError &&
          status.error.operation === "publish"
        ) refused(status.error.subject, status.error)
        const event = ConnectionEvents.fromStatus(status)
        if (event !== undefined) order.status(event)
      })
    ),
    Effect.catchCause((cause) => Effect.logDebug("nats: the status iterator ended with a failure", cause))
  )
