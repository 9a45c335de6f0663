/**
 * The NATS connection as an Effect service: connect on build, drain on
 * release, core publish / subscribe / request / serve as Effects and Streams.
 *
 * @since 0.1.0
 */
import type { ConnectionOptions, Msg, MsgHdrs, MsgHdrsImpl, NatsConnection, Payload, Status } from "@nats-io/nats-core"
import { credsAuthenticator, headers as makeHeaders, InvalidArgumentError, nkeyAuthenticator } from "@nats-io/nats-core"
import { connect } from "@nats-io/transport-node"
import type { Scope } from "effect"
import {
  Cause,
  Config,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  PubSub,
  Redacted,
  Schedule,
  Stream
} from "effect"
import { millis } from "../internal/duration.ts"
import { fromUnknown } from "../internal/errors.ts"
import { makeReconnectDriver } from "../internal/reconnect.ts"
import * as RequestMux from "../internal/requestMux.ts"
import { acquire, subscribeStream } from "../internal/subscription.ts"
import * as Auth from "../schemas/Auth.ts"
import type { ConnectionEvent } from "../schemas/ConnectionEvent.ts"
import * as E from "../schemas/NatsError.ts"
import type { Overflow } from "../schemas/Overflow.ts"
import * as Subject from "../schemas/Subject.ts"

export type { Overflow } from "../schemas/Overflow.ts"

/**
 * Headers for a message: nats.js `MsgHdrs`, or a plain record whose values
 * are one string or several.
 *
 * @category models
 * @since 0.1.0
 */
export type HeadersInit = MsgHdrs | Readonly<Record<string, string | ReadonlyArray<string>>>

/**
 * Options of `NatsClient.layer` / `make`.
 *
 * @category models
 * @since 0.1.0
 */
export interface NatsClientOptions {
  /** Server URLs, e.g. `"nats://127.0.0.1:4222"`. Default `nats://127.0.0.1:4222`. */
  readonly servers?: string | ReadonlyArray<string> | undefined
  /** The client name shown in the server's monitoring. */
  readonly name?: string | undefined
  /** How to authenticate. Secrets stay `Redacted`. */
  readonly auth?: Auth.Auth | undefined
  /** Timeout of one connect attempt. Default 3 seconds. */
  readonly connectAttemptTimeout?: Duration.Input | undefined
  /**
   * Retries of the first connect (only retryable failures such as a refused
   * connection are retried; wrong credentials fail at once). Default: 4 quick
   * exponential retries from 100 ms.
   */
  readonly connectSchedule?: Schedule.Schedule<unknown, E.NatsError> | undefined
  /** Overall limit on the first connect, retries included. Default 15 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /**
   * Delays between reconnect attempts after the connection is lost. The
   * schedule's input is the attempt number; when it ends, the connection is
   * closed for good and every user of it fails with `ConnectionClosed`. The
   * first attempt after a disconnect is immediate. Each dial is one attempt
   * (with several servers, one rotation over them is several steps). The
   * schedule must step synchronously (delays, not effects that sleep).
   * Default: exponential from 250 ms capped at 5 s, jittered, for up to 120
   * attempts (about 10 minutes).
   */
  readonly reconnectSchedule?: Schedule.Schedule<unknown, number> | undefined
  /** Bounded time given to draining the connection on release. Default 10 seconds. */
  readonly drainTimeout?: Duration.Input | undefined
  /** Log connection events through Effect's Logger. Default `true`. */
  readonly logEvents?: boolean | undefined
  /** Ping interval (stale connection detection). nats.js default: 2 minutes. */
  readonly pingInterval?: Duration.Input | undefined
  /** Do not receive the messages this connection publishes. */
  readonly noEcho?: boolean | undefined
  /**
   * Raw nats.js options merged last (escape hatch, e.g. `tls`). Options that
   * this service manages (reconnect, waitOnFirstConnect...) are overridden.
   * effect-nats sets `noAsyncTraces: true` (no stack captured per request);
   * `{ noAsyncTraces: false }` restores nats.js' default.
   */
  readonly connectionOptions?: Partial<ConnectionOptions> | undefined
}

/**
 * Options of `publish`.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishOptions {
  readonly headers?: HeadersInit | undefined
  readonly reply?: string | undefined
}

/**
 * A message for `publishAll`.
 *
 * @category models
 * @since 0.1.0
 */
export interface OutgoingMessage extends PublishOptions {
  readonly subject: string
  readonly payload?: Payload | undefined
}

/**
 * Options of `publishAll`.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishAllOptions {
  /**
   * A checkpoint (a flush) after this many messages; the previous checkpoint
   * is awaited then, so at most two batches are unconfirmed. Default 16384.
   */
  readonly flushEvery?: number | undefined
}

/**
 * Options of `subscribe`.
 *
 * @category models
 * @since 0.1.0
 */
export interface SubscribeOptions {
  /** Queue group: each message goes to one member of the group. */
  readonly queue?: string | undefined
  /**
   * Messages buffered between the server and the stream. Default 65536: the
   * client reads the socket in large chunks, so a burst of several thousand
   * small messages can arrive before the consumer runs.
   */
  readonly bufferSize?: number | undefined
  /** Payload bytes buffered, at most. Default 64 MiB. */
  readonly maxBytes?: number | undefined
  /** What happens when the buffer is full (by count or bytes). Default `"fail"`. */
  readonly overflow?: Overflow | undefined
  /** End the stream after this many messages. */
  readonly max?: number | undefined
}

/**
 * Options of `request`.
 *
 * @category models
 * @since 0.1.0
 */
export interface RequestOptions {
  /** Default 5 seconds. */
  readonly timeout?: Duration.Input | undefined
  readonly headers?: HeadersInit | undefined
}

/**
 * Options of `requestMany`: collect replies until `maxWait` passes, or
 * `maxMessages` arrived, or no reply came for `stall`.
 *
 * @category models
 * @since 0.1.0
 */
export interface RequestManyOptions {
  readonly maxWait?: Duration.Input | undefined
  readonly maxMessages?: number | undefined
  readonly stall?: Duration.Input | undefined
  readonly headers?: HeadersInit | undefined
}

/**
 * A reply produced by a `serve` handler: a payload, or a payload with headers.
 *
 * @category models
 * @since 0.1.0
 */
export type Reply = Payload | { readonly data?: Payload | undefined; readonly headers?: HeadersInit | undefined }

/**
 * Options of `serve`.
 *
 * @category models
 * @since 0.1.0
 */
export interface ServeOptions {
  /** Queue group shared by the responders; default none. */
  readonly queue?: string | undefined
  /** Requests handled at once. Default 1 (in order). */
  readonly concurrency?: number | undefined
  /** Requests buffered before handling. Default 1024; when full, requests are dropped (callers time out). */
  readonly bufferSize?: number | undefined
  /**
   * When the scope closes, intake stops and requests already received are
   * still answered for up to this long; then handlers are interrupted.
   * Default 10 seconds.
   */
  readonly gracePeriod?: Duration.Input | undefined
}

/**
 * Header carrying a handler's failure message back to the caller (the
 * convention of NATS services).
 *
 * @category constants
 * @since 0.1.0
 */
export const ServiceErrorHeader = "Nats-Service-Error"

/**
 * Header carrying a handler's failure code back to the caller.
 *
 * @category constants
 * @since 0.1.0
 */
export const ServiceErrorCodeHeader = "Nats-Service-Error-Code"

/**
 * The connection service.
 *
 * @category models
 * @since 0.1.0
 */
export interface NatsClientShape {
  /** The raw nats.js connection (escape hatch). */
  readonly connection: NatsConnection
  /** Publish a message. Invalid subjects and oversize payloads fail before anything is sent. */
  readonly publish: (subject: string, payload?: Payload, options?: PublishOptions) => Effect.Effect<void, E.NatsError>
  /**
   * Publish many messages (an iterable or a Stream) with the cost of one
   * Effect per batch, not per message, and a `flush` (a round trip to the
   * server) every `flushEvery` messages, pipelined (the previous one is
   * awaited when the next is sent, the one in flight before it returns), so that a
   * fast producer cannot outrun the socket without bound and the socket never
   * runs dry. Stops at the first failure (messages before it were sent).
   */
  readonly publishAll: <E2 = never, R = never>(
    messages: Iterable<OutgoingMessage> | Stream.Stream<OutgoingMessage, E2, R>,
    options?: PublishAllOptions
  ) => Effect.Effect<void, E.NatsError | E2, R>
  /** Subscribe to a subject or pattern (`*`, `>`), as a Stream with a bounded buffer. */
  readonly subscribe: (subject: string, options?: SubscribeOptions) => Stream.Stream<Msg, E.NatsError>
  /**
   * Subscribe now: returns once the server has registered the interest, with
   * the Stream of this subscription (read it once). The subscription ends
   * with the scope.
   */
  readonly subscribeScoped: (
    subject: string,
    options?: SubscribeOptions
  ) => Effect.Effect<Stream.Stream<Msg, E.NatsError>, E.NatsError, Scope.Scope>
  /**
   * Send a request and wait for the first reply. A reply carrying the
   * `Nats-Service-Error` headers (a failed `serve` handler, a NATS service
   * error) fails with reason `ServiceError`. Interrupting it drops its reply
   * slot and timer at once (a late reply is ignored).
   */
  readonly request: (subject: string, payload?: Payload, options?: RequestOptions) => Effect.Effect<Msg, E.NatsError>
  /** Send a request and stream every reply. */
  readonly requestMany: (
    subject: string,
    payload?: Payload,
    options?: RequestManyOptions
  ) => Stream.Stream<Msg, E.NatsError>
  /**
   * Answer requests on a subject until the scope closes. Returns once the
   * subscription is registered on the server. Closing the scope stops intake
   * and answers what was already received (within `gracePeriod`). The
   * returned fiber completes when the responder was stopped that way, and
   * fails with `ConnectionClosed` if it stopped because the connection closed.
   */
  readonly serve: <E2, R>(
    subject: string,
    handler: (msg: Msg) => Effect.Effect<Reply | void, E2, R>,
    options?: ServeOptions
  ) => Effect.Effect<Fiber.Fiber<void, E.NatsError>, E.NatsError, R | Scope.Scope>
  /** Round trip to the server: everything published before is processed. */
  readonly flush: Effect.Effect<void, E.NatsError>
  /** Round-trip time to the server. */
  readonly rtt: Effect.Effect<Duration.Duration, E.NatsError>
  /** Drain subscriptions and close the connection now (the layer does this on release). */
  readonly drain: Effect.Effect<void, E.NatsError>
  /** Connection lifecycle events from when the stream starts; it ends after `Closed`. */
  readonly events: Stream.Stream<ConnectionEvent>
  /** Connection lifecycle events from now on (subscribed before it returns); it ends after `Closed`. */
  readonly eventsScoped: Effect.Effect<Stream.Stream<ConnectionEvent>, never, Scope.Scope>
  /** Fails with `ConnectionClosed` when the connection closes other than by release or `drain`. */
  readonly awaitClosed: Effect.Effect<void, E.NatsError>
  /** Size limit of a message (payload plus headers) on the connected server. */
  readonly maxPayload: () => number
}

const encoder = new TextEncoder()

/**
 * nats.js headers from a `HeadersInit`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const toHeaders = (init: HeadersInit): MsgHdrs => {
  if (isMsgHdrs(init)) return init
  const h = makeHeaders()
  for (const key of Object.keys(init)) {
    const value = init[key]
    if (typeof value === "string") h.set(key, value)
    else if (value !== undefined) { for (const v of value) h.append(key, v) }
  }
  return h
}

/**
 * A reply reporting a failure the NATS services way: the
 * `Nats-Service-Error` (a one-line message) and `Nats-Service-Error-Code`
 * headers, no payload.
 *
 * @category constructors
 * @since 0.1.0
 */
export const serviceErrorReply = (code: number, error: unknown): Reply => {
  const h = makeHeaders()
  const text = error instanceof Error ? error.message : String(error)
  h.set(ServiceErrorHeader, text.replace(/[\r\n]+/g, " ").trim() || "error")
  h.set(ServiceErrorCodeHeader, String(code))
  return { headers: h }
}

/** The `ServiceError` a reply carries in its service error headers, if any. */
const serviceErrorOf = (subject: string, msg: Msg): E.NatsError | undefined => {
  const h = msg.headers
  if (h === undefined) return undefined
  const code = h.get(ServiceErrorCodeHeader)
  const text = h.get(ServiceErrorHeader)
  if (code === "" && text === "") return undefined
  return natsError(
    new E.ServiceError({
      operation: "request",
      subject,
      code: Number(code) || 500,
      message: `responder on ${subject} failed (${code || "500"}): ${text || "no message"}`
    })
  )
}

const isMsgHdrs = (init: HeadersInit): init is MsgHdrs =>
  typeof (init as { readonly encode?: unknown }).encode === "function"

const payloadSize = (payload: Payload | undefined): number =>
  payload === undefined ? 0 : typeof payload === "string" ? Buffer.byteLength(payload) : payload.length

const natsError = (reason: E.NatsErrorReason) => new E.NatsError({ reason })

/**
 * The default first-connect schedule: 4 quick exponential retries from 100 ms.
 *
 * @category defaults
 * @since 0.1.0
 */
export const defaultConnectSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("100 millis").pipe(
  Schedule.upTo({ times: 4 })
)

/**
 * The default reconnect schedule: exponential from 250 ms, capped at 5 s,
 * jittered, for up to 120 attempts.
 *
 * @category defaults
 * @since 0.1.0
 */
export const defaultReconnectSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("250 millis").pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(5)))),
  Schedule.jittered,
  Schedule.upTo({ times: 120 })
)

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

const eventFromStatus = (status: Status): ConnectionEvent | undefined => {
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
    case "reconnecting": // emitted by the reconnect hook, with the exact attempt
    case "close": // emitted when `closed()` resolves, with the reason
    case "ping":
    case "forceReconnect":
      return undefined
  }
}

const logEvent = (event: ConnectionEvent): Effect.Effect<void> => {
  const annotated = <A>(effect: Effect.Effect<A>) => effect.pipe(Effect.annotateLogs({ event: event._tag }))
  switch (event._tag) {
    case "Disconnected":
      return annotated(Effect.logWarning(`nats: disconnected from ${event.server}`))
    case "Reconnecting":
      return annotated(Effect.logDebug(`nats: reconnecting (attempt ${event.attempt})`))
    case "Reconnected":
      return annotated(Effect.logInfo(`nats: reconnected to ${event.server}`))
    case "ServersUpdated":
      return annotated(
        Effect.logDebug(`nats: servers updated (added: ${event.added.join(",")}; deleted: ${event.deleted.join(",")})`)
      )
    case "LameDuck":
      return annotated(Effect.logWarning(`nats: server ${event.server} entered lame duck mode`))
    case "SlowConsumer":
      return annotated(
        Effect.logWarning(
          `nats: slow consumer on ${event.subject}: buffer of ${event.bufferSize} full, ${event.dropped} dropped so far`
        )
      )
    case "ServerError":
      return annotated(Effect.logError(`nats: server error: ${event.message}`))
    case "StaleConnection":
      return annotated(Effect.logWarning("nats: stale connection"))
    case "Closed":
      return annotated(Effect.logInfo(`nats: connection closed${event.message ? `: ${event.message}` : ""}`))
  }
}

const checkSubject = (subject: string, operation: string): E.NatsError | undefined => {
  const problem = Subject.validateSubject(subject)
  return problem === undefined
    ? undefined
    : natsError(new E.InvalidSubject({ operation, subject, message: `invalid subject "${subject}": ${problem}` }))
}

const checkPattern = (subject: string, operation: string): E.NatsError | undefined => {
  const problem = Subject.validatePattern(subject)
  return problem === undefined
    ? undefined
    : natsError(
      new E.InvalidSubject({ operation, subject, message: `invalid subject pattern "${subject}": ${problem}` })
    )
}

const validateQueue = (queue: string): string | undefined => {
  if (queue.length === 0) return "must not be empty"
  for (let i = 0; i < queue.length; i++) {
    const c = queue.charCodeAt(i)
    if (c <= 32 || c === 127) return "must not contain whitespace or control characters"
  }
  return undefined
}

const checkQueue = (subject: string, queue: string | undefined): E.NatsError | undefined => {
  const problem = queue === undefined ? undefined : validateQueue(queue)
  return problem === undefined ? undefined : natsError(
    new E.InvalidArgument({ operation: "subscribe", subject, message: `invalid queue group "${queue}": ${problem}` })
  )
}

const bridgeOptions = (options: SubscribeOptions | undefined) => ({
  queue: options?.queue,
  max: options?.max,
  bufferSize: options?.bufferSize ?? 65_536,
  maxBytes: options?.maxBytes ?? 64 * 1024 * 1024,
  overflow: options?.overflow ?? "fail"
})

const checkBuffer = (
  subject: string,
  options: { readonly bufferSize?: number | undefined; readonly maxBytes?: number | undefined } | undefined
): E.NatsError | undefined => {
  const bad = (name: string, value: number | undefined) =>
    value !== undefined && !(Number.isInteger(value) && value >= 1) ? `${name} must be a positive integer` : undefined
  const problem = bad("bufferSize", options?.bufferSize) ?? bad("maxBytes", options?.maxBytes)
  return problem === undefined ? undefined : natsError(
    new E.InvalidArgument({ operation: "subscribe", subject, message: `${problem} (subject ${subject})` })
  )
}

const replyParts = (reply: Reply | void): { data: Payload | undefined; headers: MsgHdrs | undefined } => {
  if (reply === undefined) return { data: undefined, headers: undefined }
  if (typeof reply === "string" || reply instanceof Uint8Array) return { data: reply, headers: undefined }
  return { data: reply.data, headers: reply.headers === undefined ? undefined : toHeaders(reply.headers) }
}

/**
 * Connects and builds the service in the current scope; the scope's release
 * drains the connection (bounded by `drainTimeout`) and then closes it.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (options?: NatsClientOptions) => Effect.Effect<NatsClientShape, E.NatsError, Scope.Scope> = Effect
  .fnUntraced(function*(options: NatsClientOptions = {}) {
    const servers = options.servers === undefined
      ? ["nats://127.0.0.1:4222"]
      : typeof options.servers === "string"
      ? options.servers.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
      : [...options.servers]
    const events = yield* PubSub.sliding<ConnectionEvent>(1024)
    const logEvents = options.logEvents ?? true
    // Events are logged with the caller's services (its Logger, log level, annotations).
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const emit = (event: ConnectionEvent) => {
      PubSub.publishUnsafe(events, event)
      if (logEvents) runFork(logEvent(event))
    }

    let releasing = false
    let current: NatsConnection | undefined
    const driver = makeReconnectDriver(
      options.reconnectSchedule ?? defaultReconnectSchedule,
      () => {
        const nc = current
        if (nc !== undefined && !nc.isClosed()) {
          queueMicrotask(() => void nc.close().catch(() => undefined))
        }
      },
      (cause) => runFork(Effect.logError("nats: the reconnect schedule failed; waiting 2 seconds instead", cause))
    )

    const natsOptions: ConnectionOptions = {
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
      waitOnFirstConnect: false,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectDelayHandler: driver.reconnectDelayHandler,
      reconnectToServer: () => {
        driver.onDial()
        // Emitted here, synchronously, so that the attempt number is exact (the
        // status iterator's "reconnecting" arrives later and per address).
        if (current !== undefined) emit({ _tag: "Reconnecting", attempt: driver.attempt() })
        return null
      }
    }

    const connectOnce = Effect.callback<NatsConnection, E.NatsError>((resume, signal) => {
      connect(natsOptions).then(
        (nc) => {
          if (signal.aborted) void nc.close().catch(() => undefined)
          else {
            current = nc
            resume(Effect.succeed(nc))
          }
        },
        (cause) => resume(Effect.fail(fromUnknown(cause, { operation: "connect" })))
      )
    })

    const connectTimeout = options.connectTimeout ?? "15 seconds"
    const nc = yield* Effect.acquireRelease(
      connectOnce.pipe(
        Effect.retry({
          schedule: options.connectSchedule ?? defaultConnectSchedule,
          while: (error) => error.isRetryable
        }),
        Effect.timeoutOrElse({
          duration: connectTimeout,
          orElse: () =>
            Effect.fail(natsError(
              new E.Timeout({
                operation: "connect",
                message: `could not connect to ${servers.join(", ")} within ${
                  Duration.format(Duration.fromInputUnsafe(connectTimeout))
                }`,
                timeoutMillis: millis(connectTimeout)
              })
            ))
        }),
        Effect.tap(() => Effect.sync(() => driver.reset())),
        // interrupted after a connect succeeded but before the finalizer was
        // registered: close that connection
        Effect.onInterrupt(() =>
          Effect.sync(() => {
            const late = current
            if (late !== undefined && !late.isClosed()) void late.close().catch(() => undefined)
          })
        )
      ),
      (nc) =>
        Effect.gen(function*() {
          releasing = true
          if (nc.isClosed()) return
          const drained = yield* Effect.tryPromise(() => nc.drain()).pipe(
            Effect.timeoutOption(options.drainTimeout ?? "10 seconds"),
            Effect.exit
          )
          if (Exit.isFailure(drained) || Option.isNone(drained.value)) {
            yield* Effect.logWarning("nats: drain did not complete in time; closing the connection")
          }
          yield* Effect.promise(() => nc.close().catch(() => undefined))
        }),
      // the first connect (retries included) can be interrupted
      { interruptible: true }
    )

    const statusIterator = nc.status()
    yield* Effect.forkScoped(
      Stream.fromAsyncIterable(statusIterator, (cause) => cause).pipe(
        Stream.runForEach((status) =>
          Effect.sync(() => {
            if (status.type === "reconnect") driver.reset()
            const event = eventFromStatus(status)
            if (event !== undefined) emit(event)
          })
        ),
        Effect.catchCause((cause) => Effect.logDebug("nats: the status iterator ended with a failure", cause))
      )
    )

    const closed = yield* Deferred.make<void, E.NatsError>()
    nc.closed().then((err) => {
      const message = releasing
        ? undefined
        : err instanceof Error
        ? `closed: ${err.message}`
        : "closed: reconnect attempts exhausted or closed outside the layer"
      emit(message === undefined ? { _tag: "Closed" } : { _tag: "Closed", message })
      // Closed is the last event: streams of events end after it.
      runFork(PubSub.shutdown(events))
      if (releasing) Deferred.doneUnsafe(closed, Exit.void)
      else {
        Deferred.doneUnsafe(
          closed,
          Exit.fail(natsError(new E.ConnectionClosed({ operation: "connection", message: `connection ${message}` })))
        )
      }
    })

    const hooks = {
      onSlowConsumer: (subject: string, dropped: number, bufferSize: number) =>
        emit({ _tag: "SlowConsumer", subject, dropped, bufferSize }),
      isReleasing: () => releasing
    }

    const maxPayload = () => nc.info?.max_payload ?? 1024 * 1024

    const checkPayload = (
      subject: string,
      payload: Payload | undefined,
      hdrs: MsgHdrs | undefined,
      operation: string
    ): E.NatsError | undefined => {
      const size = payloadSize(payload) + (hdrs === undefined ? 0 : (hdrs as MsgHdrsImpl).encode().length)
      const max = maxPayload()
      return size > max
        ? natsError(
          new E.MaxPayloadExceeded({
            operation,
            subject,
            size,
            maxPayload: max,
            message: `message of ${size} bytes exceeds the server's max_payload of ${max} bytes`
          })
        )
        : undefined
    }

    const flush = Effect.tryPromise({
      try: () => nc.flush(),
      catch: (cause) => fromUnknown(cause, { operation: "flush" })
    }).pipe(Effect.withSpan("NatsClient.flush", { attributes: { "messaging.system": "nats" } }))

    const rtt = Effect.tryPromise({
      try: () => nc.rtt(),
      catch: (cause) => fromUnknown(cause, { operation: "rtt" })
    }).pipe(
      Effect.map(Duration.millis),
      Effect.withSpan("NatsClient.rtt", { attributes: { "messaging.system": "nats" } })
    )

    // Subjects already validated (bounded; cleared when full). Publishing to a
    // handful of subjects is the common case; validation then costs a lookup.
    const mux = RequestMux.of(nc, natsOptions.inboxPrefix)
    const validSubjects = new Set<string>()
    const checkSubjectCached = (subject: string, operation: string): E.NatsError | undefined => {
      if (validSubjects.has(subject)) return undefined
      const invalid = checkSubject(subject, operation)
      if (invalid === undefined) {
        if (validSubjects.size >= 4096) validSubjects.clear()
        validSubjects.add(subject)
      }
      return invalid
    }

    /** Publishes now; returns the failure instead of throwing it. */
    const publishNow = (
      subject: string,
      payload: Payload | undefined,
      options: PublishOptions | undefined
    ): E.NatsError | undefined => {
      const invalid = checkSubjectCached(subject, "publish")
      if (invalid !== undefined) return invalid
      let natsOptions: { headers?: MsgHdrs; reply?: string } | undefined
      if (options !== undefined) {
        if (options.reply !== undefined) {
          const invalidReply = checkSubjectCached(options.reply, "publish")
          if (invalidReply !== undefined) return invalidReply
          natsOptions = { reply: options.reply }
        }
        if (options.headers !== undefined) {
          natsOptions ??= {}
          natsOptions.headers = toHeaders(options.headers)
        }
      }
      try {
        // nats.js checks max_payload (headers included) before anything is
        // sent; the size is only computed for the error.
        nc.publish(subject, payload, natsOptions)
        return undefined
      } catch (cause) {
        return (cause instanceof InvalidArgumentError && cause.message.includes("max_payload")
          ? checkPayload(subject, payload, natsOptions?.headers, "publish")
          : undefined) ?? fromUnknown(cause, { operation: "publish", subject })
      }
    }

    const publish = (subject: string, payload?: Payload, options?: PublishOptions): Effect.Effect<void, E.NatsError> =>
      Effect.suspend(() => {
        const failed = publishNow(subject, payload, options)
        return failed === undefined ? Effect.void : Effect.fail(failed)
      })

    const publishBatch = (messages: Iterable<OutgoingMessage>): E.NatsError | undefined => {
      for (const m of messages) {
        const failed = publishNow(m.subject, m.payload, m)
        if (failed !== undefined) return failed
      }
      return undefined
    }

    const publishAll = <E2 = never, R = never>(
      messages: Iterable<OutgoingMessage> | Stream.Stream<OutgoingMessage, E2, R>,
      options?: PublishAllOptions
    ): Effect.Effect<void, E.NatsError | E2, R> => {
      const flushEvery = options?.flushEvery ?? 16_384
      return Effect.suspend(() => {
        // Checkpoints are pipelined: a flush is sent after every `flushEvery`
        // messages, and the previous one is awaited then, so the socket never
        // runs dry while at most two batches are unconfirmed. The flush in
        // flight is awaited at the end (and its failure reported); its promise
        // never rejects unobserved.
        let inFlight: Promise<E.NatsError | undefined> | undefined
        const settled = (promise: Promise<E.NatsError | undefined>) =>
          Effect.flatMap(
            Effect.promise(() => promise),
            (error) => error === undefined ? Effect.void : Effect.fail(error)
          )
        const checkpoint = Effect.suspend(() => {
          const previous = inFlight
          inFlight = nc.flush().then(() => undefined, (cause: unknown) => fromUnknown(cause, { operation: "flush" }))
          return previous === undefined ? Effect.void : settled(previous)
        })
        const last = Effect.suspend(() => inFlight === undefined ? Effect.void : settled(inFlight))
        if (!Stream.isStream(messages)) {
          const iterator = messages[Symbol.iterator]()
          // Publish up to flushEvery messages, then checkpoint.
          const loop: Effect.Effect<void, E.NatsError> = Effect.suspend(() => {
            for (let i = 0; i < flushEvery; i++) {
              const next = iterator.next()
              if (next.done === true) return last
              const failed = publishNow(next.value.subject, next.value.payload, next.value)
              if (failed !== undefined) return Effect.fail(failed)
            }
            return Effect.andThen(checkpoint, loop)
          })
          return loop
        }
        const stream = messages as Stream.Stream<OutgoingMessage, E2, R>
        let sinceFlush = 0
        return Stream.runForEachArray(stream, (chunk) => {
          const failed = publishBatch(chunk)
          if (failed !== undefined) return Effect.fail(failed)
          sinceFlush += chunk.length
          if (sinceFlush < flushEvery) return Effect.void
          sinceFlush = 0
          return checkpoint
        }).pipe(Effect.andThen(last))
      })
    }

    const subscribe = (subject: string, options?: SubscribeOptions): Stream.Stream<Msg, E.NatsError> =>
      Stream.suspend(() => {
        const invalid = checkPattern(subject, "subscribe") ?? checkQueue(subject, options?.queue) ??
          checkBuffer(subject, options)
        if (invalid !== undefined) return Stream.fail(invalid)
        return subscribeStream(nc, subject, bridgeOptions(options), hooks)
      })

    const subscribeScoped = (
      subject: string,
      options?: SubscribeOptions
    ): Effect.Effect<Stream.Stream<Msg, E.NatsError>, E.NatsError, Scope.Scope> =>
      Effect.gen(function*() {
        const invalid = checkPattern(subject, "subscribe") ?? checkQueue(subject, options?.queue) ??
          checkBuffer(subject, options)
        if (invalid !== undefined) return yield* invalid
        const { messages } = yield* acquire(nc, subject, bridgeOptions(options), hooks)
        yield* flush
        return messages
      })

    // A leaf span (`useSpan`: cheaper than `withSpan`, which re-parents what runs inside).
    const request = (subject: string, payload?: Payload, options?: RequestOptions): Effect.Effect<Msg, E.NatsError> =>
      Effect.useSpan("NatsClient.request", {
        kind: "client",
        attributes: { "messaging.system": "nats", "messaging.destination.name": subject }
      }, () => {
        const invalid = checkSubjectCached(subject, "request")
        if (invalid !== undefined) return Effect.fail(invalid)
        const hdrs = options?.headers === undefined ? undefined : toHeaders(options.headers)
        const tooBig = checkPayload(subject, payload, hdrs, "request")
        if (tooBig !== undefined) return Effect.fail(tooBig)
        const timeout = millis(options?.timeout ?? 5000)
        return Effect.callback<Msg, E.NatsError>((resume) =>
          // interrupted: the reply slot and its timer go at once
          Effect.sync(mux.send("request", subject, payload, hdrs, timeout, (outcome) => {
            switch (outcome._tag) {
              case "Reply": {
                const failed = serviceErrorOf(subject, outcome.msg)
                return resume(failed === undefined ? Effect.succeed(outcome.msg) : Effect.fail(failed))
              }
              case "NoResponders":
                return resume(Effect.fail(natsError(
                  new E.NoResponders({ operation: "request", subject, message: `no responders for ${subject}` })
                )))
              case "Failed":
                return resume(Effect.fail(outcome.error))
            }
          }))
        )
      })

    const requestMany = (
      subject: string,
      payload?: Payload,
      options?: RequestManyOptions
    ): Stream.Stream<Msg, E.NatsError> =>
      Stream.unwrap(Effect.suspend(() => {
        const invalid = checkSubject(subject, "requestMany")
        if (invalid !== undefined) return Effect.fail(invalid)
        const hdrs = options?.headers === undefined ? undefined : toHeaders(options.headers)
        const tooBig = checkPayload(subject, payload, hdrs, "requestMany")
        if (tooBig !== undefined) return Effect.fail(tooBig)
        const maxWait = millis(options?.maxWait ?? 5000)
        const strategy = options?.maxMessages !== undefined ? "count" : options?.stall !== undefined ? "stall" : "timer"
        return Effect.tryPromise({
          try: () =>
            nc.requestMany(subject, payload, {
              strategy,
              maxWait,
              ...(options?.maxMessages === undefined ? {} : { maxMessages: options.maxMessages }),
              ...(options?.stall === undefined ? {} : { stall: millis(options.stall) }),
              ...(hdrs === undefined ? {} : { headers: hdrs })
            }),
          catch: (cause) => fromUnknown(cause, { operation: "requestMany", subject })
        }).pipe(
          Effect.map((replies) =>
            Stream.fromAsyncIterable(replies, (cause) => fromUnknown(cause, { operation: "requestMany", subject }))
          )
        )
      }))

    const serve = <E2, R>(
      subject: string,
      handler: (msg: Msg) => Effect.Effect<Reply | void, E2, R>,
      options?: ServeOptions
    ): Effect.Effect<Fiber.Fiber<void, E.NatsError>, E.NatsError, R | Scope.Scope> =>
      Effect.gen(function*() {
        const respond = (msg: Msg) =>
          Effect.suspend(() => handler(msg)).pipe(
            Effect.matchCauseEffect({
              onSuccess: (reply) =>
                Effect.sync(() => {
                  const { data, headers } = replyParts(reply)
                  msg.respond(data, headers === undefined ? undefined : { headers })
                }),
              onFailure: (cause) => {
                if (Cause.hasInterruptsOnly(cause)) return Effect.void
                return Effect.logError(`nats: handler for ${subject} failed`, cause).pipe(
                  Effect.andThen(Effect.sync(() => {
                    const { headers } = replyParts(serviceErrorReply(500, Cause.squash(cause)))
                    msg.respond(undefined, headers === undefined ? undefined : { headers })
                  }))
                )
              }
            }),
            Effect.catchCause((cause) => Effect.logError(`nats: could not reply on ${subject}`, cause))
          )
        const invalid = checkPattern(subject, "serve") ?? checkQueue(subject, options?.queue) ??
          checkBuffer(subject, options)
        if (invalid !== undefined) return yield* invalid
        const requests = yield* acquire(nc, subject, {
          queue: options?.queue,
          bufferSize: options?.bufferSize ?? 1024,
          maxBytes: 64 * 1024 * 1024,
          overflow: "dropNewest",
          // a request is answered on the stack that received it (no scheduler turn)
          eager: true
        }, hooks)
        yield* flush
        let stopping = false
        const concurrency = options?.concurrency ?? 1
        const run = (concurrency === 1
          ? Stream.runForEach(requests.messages, respond)
          : requests.messages.pipe(Stream.mapEffect(respond, { concurrency, unordered: true }), Stream.runDrain)).pipe(
            Effect.andThen(Effect.suspend(() =>
              stopping || releasing ? Effect.void : Effect.fail(natsError(
                new E.ConnectionClosed({ operation: "serve", subject, message: `responder on ${subject} stopped` })
              ))
            ))
          )
        const fiber = yield* Effect.forkDetach(run)
        // Graceful stop, before the subscription's own release: no new requests,
        // those buffered and in flight are answered within the grace period.
        yield* Effect.addFinalizer(() =>
          Effect.gen(function*() {
            stopping = true
            requests.stop()
            const done = yield* Fiber.await(fiber).pipe(Effect.timeoutOption(options?.gracePeriod ?? "10 seconds"))
            if (Option.isNone(done)) {
              yield* Effect.logWarning(`nats: responder on ${subject} did not finish within its grace period`)
              yield* Fiber.interrupt(fiber)
            }
          })
        )
        return fiber
      }).pipe(Effect.withSpan("NatsClient.serve", {
        attributes: { "messaging.system": "nats", "messaging.destination.name": subject }
      }))

    const drain = Effect.suspend(() => {
      releasing = true
      return nc.isClosed() ? Effect.void : Effect.tryPromise({
        try: () => nc.drain(),
        catch: (cause) => fromUnknown(cause, { operation: "drain" })
      })
    }).pipe(Effect.withSpan("NatsClient.drain", { attributes: { "messaging.system": "nats" } }))

    return NatsClient.of({
      connection: nc,
      publish,
      publishAll,
      subscribe,
      subscribeScoped,
      request,
      requestMany,
      serve,
      flush,
      rtt,
      drain,
      events: Stream.fromPubSub(events),
      eventsScoped: Effect.map(PubSub.subscribe(events), Stream.fromSubscription),
      awaitClosed: Deferred.await(closed),
      maxPayload
    })
  })

/**
 * The NATS connection service.
 *
 * @category services
 * @since 0.1.0
 */
export class NatsClient extends Context.Service<NatsClient, NatsClientShape>()("effect-nats/NatsClient") {
  /**
   * A layer that connects with the given options and drains on release.
   *
   * @since 0.1.0
   */
  static readonly layer = (options?: NatsClientOptions): Layer.Layer<NatsClient, E.NatsError> =>
    Layer.effect(NatsClient, make(options))

  /**
   * A layer whose options come from `Config` (default: `config`, reading
   * `NATS_URL`, `NATS_NAME` and the auth variables).
   *
   * @since 0.1.0
   */
  static readonly layerConfig = (
    options: Config.Config<NatsClientOptions> = config
  ): Layer.Layer<NatsClient, E.NatsError | Config.ConfigError> =>
    Layer.effect(NatsClient, Effect.flatMap(options, make))
}

/**
 * Connection options from configuration: `NATS_URL` (comma separated, default
 * `nats://127.0.0.1:4222`), `NATS_NAME`, and the auth variables read by
 * `Auth.config` (`NATS_USER`/`NATS_PASSWORD`, `NATS_TOKEN`, `NATS_NKEY_SEED`,
 * `NATS_CREDS`).
 *
 * @category config
 * @since 0.1.0
 */
export const config: Config.Config<NatsClientOptions> = Config.all({
  servers: Config.String("NATS_URL").pipe(Config.withDefault("nats://127.0.0.1:4222")),
  name: Config.option(Config.String("NATS_NAME")),
  auth: Auth.config
}).pipe(Config.map(({ auth, name, servers }) => ({
  servers,
  ...(Option.isSome(name) ? { name: name.value } : {}),
  ...(Option.isSome(auth) ? { auth: auth.value } : {})
})))
