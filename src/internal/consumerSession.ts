/**
 * One nats.js `consume` or `fetch` of a consumer, as a bounded Stream of raw
 * messages: the session opens the pull, reports its status notifications,
 * and moves messages into a queue until it is stopped.
 *
 * Two ways in: nats.js' callback (when the server bounds what is in flight:
 * explicit acks with a `max_ack_pending`), or its async iterator read by a
 * pump that waits for room in the queue before it reads the next message
 * (so nothing more is pulled while the Stream is full). Releasing the
 * session stops the pull at once, shuts the queue down (a pump waiting for
 * room ends) and closes the status iterator.
 *
 * @internal
 */
import type { ConsumerMessages, ConsumerNotification, JsMsg } from "@nats-io/jetstream"
import type { Fiber, Scope } from "effect"
import { Cause, Effect, Exit, Queue, Stream } from "effect"
import type * as NatsError from "../schemas/NatsError.ts"
import type { ConsumerStatus } from "../services/Consumer.ts"
import type { ConsumerContext } from "./consumerErrors.ts"
import { consumerFromUnknown, stalled } from "./consumerErrors.ts"
import * as ConsumerStatuses from "./consumerStatus.ts"
import { connectionClosed, unknown } from "./errors.ts"
import * as Metrics from "./metrics.ts"

/** An open pull. */
interface Session {
  readonly messages: ConsumerMessages
  /** Absent when nats.js delivers through a callback. */
  readonly iterator: AsyncIterator<JsMsg> | undefined
  stopped: boolean
  /** Being drained (its end is not a failure). */
  draining: boolean
}

/**
 * Stops the pull: `close` unsubscribes the pull inbox synchronously (nothing
 * more is pulled); its promise only settles once the iterator has drained,
 * so it is not awaited; `return` ends an iterator suspended at a `yield`.
 */
const stop = (session: Session): void => {
  if (session.stopped) return
  session.stopped = true
  close(session)
}

const close = (session: Session): void => {
  try {
    session.messages.close().catch(() => undefined)
  } catch {
    // the connection is already closed
  }
  try {
    session.iterator?.return?.().catch(() => undefined)
  } catch {
    // ignored
  }
}

/** nats.js' pull, as far as a graceful end needs it (not in its types: it has no API for it). */
interface PullInternals {
  readonly sub?: { readonly drain: () => Promise<void> } | undefined
  readonly opts?: { threshold_messages?: number; threshold_bytes?: number } | undefined
}

/**
 * Ends a pull without dropping what is on the wire: no more pull requests
 * (nats.js pulls again when what is outstanding falls to its thresholds:
 * they are set out of reach), then the inbox is drained (an `UNSUB` and a
 * round trip: what the server sent before it still arrives, into the
 * queue). Bounded; best effort.
 */
const drainPull = (session: Session): Effect.Effect<void> =>
  Effect.suspend(() => {
    session.draining = true
    const pull = session.messages as unknown as PullInternals
    if (pull.opts !== undefined) {
      pull.opts.threshold_messages = -1
      pull.opts.threshold_bytes = -1
    }
    const drain = pull.sub?.drain
    if (drain === undefined) return Effect.void
    return Effect.ignore(Effect.tryPromise(() => drain.call(pull.sub))).pipe(Effect.timeoutOption("2 seconds"))
  }).pipe(Effect.ensuring(Effect.sync(() => stop(session))), Effect.asVoid)

/** The open sessions of one consumer handle: all stopped when the handle closes. */
export class Sessions {
  private readonly open = new Set<Session>()
  /** The handle is closing: a session's end is not a failure. */
  closing = false

  /** A session that finished opening; one that opened after the handle began to close is stopped at once. */
  add(session: Session): void {
    if (this.closing) return stop(session)
    this.open.add(session)
  }

  remove(session: Session): void {
    this.open.delete(session)
  }

  /** Stops every session (the handle's release). */
  closeAll(): void {
    this.closing = true
    for (const session of this.open) stop(session)
    this.open.clear()
  }
}

/** How to open one session and what to do with what it reports. */
export interface SessionOptions {
  readonly operation: string
  /** The consumer, for errors (its current name). */
  readonly context: () => ConsumerContext
  /** The `consumer` attribute of its metrics (the durable's name; `ordered` for an ordered consumer). */
  readonly metricsConsumer: string
  /** Opens the nats.js pull; `deliver` is given when nats.js may deliver through its callback. */
  readonly open: (deliver: ((msg: JsMsg) => void) | undefined) => Promise<ConsumerMessages>
  /** Whether nats.js may deliver through its callback (the server bounds what is in flight). Default no. */
  readonly callbackMode?: (() => Promise<boolean>) | undefined
  /** The queue's capacity in iterator mode. */
  readonly bufferSize: number
  /** A `consume` (runs until stopped: any other end is a failure), not a `fetch`. */
  readonly continuous: boolean
  /** Called with each message as it enters the queue. */
  readonly onReceive?: ((msg: JsMsg) => void) | undefined
  /** Called when the session is released. */
  readonly onStop?: (() => void) | undefined
  /** Each status of the pull; a failure fails the session (a push consumer found gone, say). */
  readonly onStatus: (status: ConsumerStatus) => Effect.Effect<void, NatsError.NatsError>
  readonly sessions: Sessions
  /** Whether the connection is closed (an unexpected end then says so). */
  readonly connectionClosed: () => boolean
  /**
   * A continuous pull's heartbeat interval: when neither a message nor a
   * heartbeat came for `stallBeats` of them (1.5 for a pull opened again
   * after a stall) while the Stream had room, the
   * pull is stalled (its requests were lost with a consumer leader, say, and
   * nats.js waits a whole pull expiry before it asks again): the session
   * stops and fails with a stall (`isStalled`), to be opened again.
   */
  readonly heartbeatMillis?: number | undefined
  /** The pull opens again after a stall: a shorter fuse (its first heartbeat is due within one interval). */
  readonly afterStall?: boolean | undefined
  /**
   * A pull of explicitly acked messages: its release drains it (what is on
   * the wire still arrives) and naks, to come back after this delay, every
   * message that arrived and was not handed out — instead of leaving them
   * to their ack wait. Delayed: on nats-server 2.9 an immediate nak right
   * after a pull closed can hand a message out twice at once.
   */
  readonly releaseNakDelayMillis?: number | undefined
}

/** Heartbeat intervals without a message or a heartbeat after which a pull is stalled. */
export const stallBeats = 3

/**
 * What a pull has received, for the stall watchdog: a count (one increment
 * per message or heartbeat, no clock read on the hot path) and whether the
 * Stream is full (nothing is pulled then, so silence is expected).
 */
class Activity {
  count = 0
  blocked = false
}

/** Statuses that show the pull is alive at the server. */
const alive = (status: ConsumerStatus): boolean =>
  status._tag === "Heartbeat" || status._tag === "Discard" || status._tag === "FlowControl"

/** The session as a Stream of raw messages. */
export const stream = (options: SessionOptions): Stream.Stream<JsMsg, NatsError.NatsError> =>
  Stream.unwrap(Effect.gen(function*() {
    const ctx = options.context()
    const failed = (cause: unknown) => consumerFromUnknown(cause, ctx)
    const callback = options.callbackMode === undefined
      ? false
      : yield* Effect.tryPromise({ try: options.callbackMode, catch: failed })
    // In callback mode the queue is not bounded here: the server bounds what
    // is delivered and not yet acked (max_ack_pending). Otherwise it is
    // bounded, and the pump waits for room before it reads the next message.
    const queue = yield* Queue.make<JsMsg, NatsError.NatsError | Cause.Done>(
      callback ? {} : { capacity: options.bufferSize }
    )
    const activity = options.continuous && options.heartbeatMillis !== undefined ? new Activity() : undefined
    const session = yield* acquire(options, queue, callback, failed, activity)
    // listened to at once: nats.js hands a notification only to the listeners it already has
    const statuses = session.messages.status()[Symbol.asyncIterator]()
    yield* Effect.forkScoped(watchStatus(statuses, options, queue, activity))
    const fail = (error: NatsError.NatsError) => Queue.failCauseUnsafe(queue, Cause.fail(error))
    if (activity !== undefined && options.heartbeatMillis !== undefined) {
      const beat = options.heartbeatMillis
      // checked every half heartbeat: a pull opened again after a stall (its first heartbeat is due one
      // interval after it is made) is stalled after 1.5 intervals of silence, any other after 3
      const tick = Math.max(1, Math.floor(beat / 2))
      const ticks = options.afterStall === true ? 3 : 2 * stallBeats
      yield* Effect.forkScoped(watchdog(activity, tick, ticks, () => {
        // what is buffered is still handed out; nothing more comes from this pull
        stop(session)
        fail(stalled(ctx, tick * ticks))
      }))
    }
    // the end of the pull: the end of a fetch; a failure for a consume, unless stopped
    const ended = () => {
      if (!options.continuous || options.sessions.closing || session.stopped || session.draining) {
        return Queue.endUnsafe(queue)
      }
      fail(
        options.connectionClosed()
          ? connectionClosed(options.operation, `connection closed while consuming ${ctx.consumer}`)
          : unknown(options.operation, `consume of ${ctx.consumer} ended unexpectedly`)
      )
    }
    if (session.iterator === undefined) {
      session.messages.closed().then(
        (err) => err instanceof Error ? fail(failed(err)) : ended(),
        (cause) => fail(failed(cause))
      )
    } else {
      const iterator = session.iterator
      const runFork = Effect.runForkWith(yield* Effect.context<never>())
      pump(session, iterator, queue, options.onReceive, ended, runFork, activity).catch((cause) => fail(failed(cause)))
    }
    // counted a chunk at a time, as the Stream takes them
    const context = yield* Effect.context<never>()
    const received = Metrics.consumedWith({ stream: ctx.stream, consumer: options.metricsConsumer })
    return Stream.fromQueue(queue).pipe(Stream.mapArray((chunk) => {
      received.updateUnsafe(chunk.length, context)
      return chunk
    }))
  }))

/** Opens the pull in the current scope; the release stops it and shuts the queue down. */
const acquire = (
  options: SessionOptions,
  queue: Queue.Queue<JsMsg, NatsError.NatsError | Cause.Done>,
  callback: boolean,
  failed: (cause: unknown) => NatsError.NatsError,
  activity: Activity | undefined
): Effect.Effect<Session, NatsError.NatsError, Scope.Scope> => {
  const onReceive = options.onReceive
  const deliver = !callback
    ? undefined
    : onReceive === undefined && activity === undefined
    ? (msg: JsMsg) => void Queue.offerUnsafe(queue, msg)
    : (msg: JsMsg) => {
      if (activity !== undefined) activity.count++
      onReceive?.(msg)
      Queue.offerUnsafe(queue, msg)
    }
  return Effect.acquireRelease(
    Effect.tryPromise({ try: () => options.open(deliver), catch: failed }).pipe(
      Effect.map((messages): Session => ({
        messages,
        iterator: callback ? undefined : messages[Symbol.asyncIterator](),
        stopped: false,
        draining: false
      })),
      Effect.tap((session) => Effect.sync(() => options.sessions.add(session)))
    ),
    (session) =>
      Effect.gen(function*() {
        options.sessions.remove(session)
        const delay = options.releaseNakDelayMillis
        if (delay === undefined || session.stopped) {
          stop(session)
        } else {
          yield* drainPull(session)
          // arrived, never handed out: back to the server
          for (const msg of yield* Effect.orElseSucceed(Queue.clear(queue), () => [])) {
            try {
              msg.nak(delay)
            } catch {
              // the connection is closing: the ack wait brings it back
            }
          }
        }
        // a pump waiting for room (a forked offer) ends with the queue
        yield* Queue.shutdown(queue)
        try {
          options.onStop?.()
        } catch {
          // best effort
        }
      })
  )
}

/** Reports the pull's status notifications until the session ends. */
const watchStatus = (
  statusIterator: AsyncIterator<ConsumerNotification>,
  options: SessionOptions,
  queue: Queue.Queue<JsMsg, NatsError.NatsError | Cause.Done>,
  activity: Activity | undefined
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function*() {
    yield* Effect.addFinalizer(() => Effect.sync(() => void statusIterator.return?.().catch(() => undefined)))
    while (true) {
      const result = yield* Effect.tryPromise(() => statusIterator.next())
      if (result.done === true) return
      const status = ConsumerStatuses.fromNotification(result.value)
      if (status === undefined) continue
      if (activity !== undefined && alive(status)) activity.count++
      yield* Effect.catch(options.onStatus(status), (error) => Queue.fail(queue, error))
    }
  }).pipe(Effect.ignore)

/**
 * Reads nats.js' iterator into the queue: a plain async loop (no Effect per
 * message); only a full queue waits, through an Effect offer that suspends
 * (nothing more is pulled meanwhile) and ends when the queue shuts down.
 */
const pump = async (
  session: Session,
  iterator: AsyncIterator<JsMsg>,
  queue: Queue.Queue<JsMsg, NatsError.NatsError | Cause.Done>,
  onReceive: ((msg: JsMsg) => void) | undefined,
  ended: () => void,
  runFork: (effect: Effect.Effect<boolean>) => Fiber.Fiber<boolean>,
  activity: Activity | undefined
): Promise<void> => {
  while (!session.stopped) {
    const result = await iterator.next()
    if (result.done === true) return ended()
    if (activity !== undefined) activity.count++
    onReceive?.(result.value)
    if (Queue.offerUnsafe(queue, result.value)) continue
    if (activity !== undefined) activity.blocked = true
    const offered = await new Promise<boolean>((resolve) => {
      runFork(Queue.offer(queue, result.value)).addObserver((exit) => resolve(Exit.isSuccess(exit) && exit.value))
    })
    if (activity !== undefined) {
      activity.blocked = false
      activity.count++
    }
    if (!offered) return
  }
  // stopped (before it started, say: the handle was closing): the Stream ends
  ended()
}

/**
 * Checks the pull every `tickMillis`; calls `onStall` (once) when `ticks` of
 * them went by without a message or a heartbeat while the Stream had room.
 */
const watchdog = (activity: Activity, tickMillis: number, ticks: number, onStall: () => void): Effect.Effect<void> =>
  Effect.gen(function*() {
    let seen = activity.count
    let silent = 0
    while (true) {
      yield* Effect.sleep(tickMillis)
      if (activity.blocked || activity.count !== seen) {
        seen = activity.count
        silent = 0
      } else if (++silent >= ticks) {
        return onStall()
      }
    }
  })
