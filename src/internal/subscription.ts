/**
 * The bridge from a nats.js callback subscription to a bounded `Stream`.
 *
 * The server pushes; a Stream pulls. Messages go from the nats.js callback
 * into a bounded queue with an explicit overflow policy, so memory stays
 * bounded under a slow consumer and an overflow is always visible.
 *
 * @internal
 */
import type { Msg, Subscription } from "@nats-io/nats-core"
import type { Array as Arr, Scope } from "effect"
import { Cause, Effect, Queue, Stream } from "effect"
import type * as NatsError from "../schemas/NatsError.ts"
import type { Overflow } from "../schemas/Overflow.ts"
import type { NatsCore } from "./core.ts"
import { connectionClosed, fromUnknown, slowConsumer } from "./errors.ts"
import { MessageRing } from "./messageRing.ts"
import * as Metrics from "./metrics.ts"
import { SizeRing } from "./sizeRing.ts"
import { refusal } from "./subscriptionLimit.ts"

export interface BridgeOptions {
  readonly queue?: string | undefined
  readonly max?: number | undefined
  readonly bufferSize: number
  /** Payload bytes buffered, at most. */
  readonly maxBytes: number
  readonly overflow: Overflow
  /**
   * Wake the Stream's reader on nats.js' callback stack, for each message
   * (lowest latency: request handlers), instead of once per socket read on
   * the scheduler's next turn (highest throughput).
   */
  readonly eager?: boolean | undefined
}

/** A live subscription: its messages, and a way to stop intake gracefully. */
export interface Acquired {
  /** The messages; ends after `stop` once the buffer is drained. */
  readonly messages: Stream.Stream<Msg, NatsError.NatsError>
  /** Stops intake (a drain: messages already on their way still arrive) and ends the stream after them. */
  readonly stop: () => void
  /**
   * The server took the subscription: a round trip after the `SUB`. Fails
   * with `LimitExceeded` when the server refused it at the subscription limit.
   */
  readonly confirmed: Effect.Effect<void, NatsError.NatsError>
}

export interface BridgeHooks {
  /** Called with a subscription's drops so far (when an overflow starts, lasts a second, or ends). */
  readonly onSlowConsumer: (subject: string, dropped: number, bufferSize: number) => void
  /** True when the connection closes because the client itself released it. */
  readonly isReleasing: () => boolean
  /** Whether the connection is up (a drain needs the server's answer). */
  readonly isConnected: () => boolean
}

/**
 * The messages a subscription dropped, and their reports: an overflow is
 * reported when it starts, every second while it lasts, and when it ends
 * (the buffer takes a message again, or the subscription ends), so that
 * the last report has the total.
 */
class Drops {
  dropped = 0
  private reported = 0
  private reportedAt = 0
  private overflowing = false
  private readonly onReport: () => void

  constructor(onReport: () => void) {
    this.onReport = onReport
  }

  /** One more message dropped. */
  drop(): void {
    this.dropped++
    if (!this.overflowing) {
      this.overflowing = true
      this.report()
    } else if (Date.now() - this.reportedAt >= 1000) {
      this.report()
    }
  }

  /** A message was taken into the buffer: an overflow under way has ended. */
  accepted(): void {
    if (!this.overflowing) return
    this.overflowing = false
    this.report()
  }

  /** Reports what was dropped since the last report, if anything. */
  report(): void {
    if (this.dropped === this.reported) return
    this.reported = this.dropped
    this.reportedAt = Date.now()
    this.onReport()
  }
}

/** A queue entry for a message held as bytes in the buffer's ring. */
const HELD = 0
/** The most messages a Stream's chunk has. */
const chunkSize = 256
/** Buffers smaller than twice this hold every message as it came (a backlog that small costs a scavenge little). */
const holdFromAtLeast = 512
type Entry = Msg | typeof HELD

/**
 * A subscription's buffer: its queue, bounded by count (the queue's
 * capacity) and by payload bytes, and what a message that does not fit
 * does (`dropOldest`: the oldest make room; otherwise it is refused).
 * Once it is half full, what comes in is held as bytes (`MessageRing`),
 * so that a backlog is not young memory for V8 to copy.
 */
class BoundedBuffer {
  readonly queue: Queue.Queue<Entry, NatsError.NatsError | Cause.Done>
  private readonly options: BridgeOptions
  private readonly holdFrom: number
  private readonly ring = new MessageRing()
  /** Each entry's payload bytes, so that a chunk's are known without a pass over its messages. */
  private readonly sizes = new SizeRing()
  /** The payload bytes of the last chunk taken. */
  takenBytes = 0

  constructor(queue: Queue.Queue<Entry, NatsError.NatsError | Cause.Done>, options: BridgeOptions) {
    this.queue = queue
    this.options = options
    this.holdFrom = Math.max(holdFromAtLeast, Math.ceil(options.bufferSize / 2))
  }

  /** Takes a message in; false when a message was dropped for it (itself, or the oldest). */
  offer(msg: Msg): boolean {
    const size = msg.data.length
    if (this.options.overflow === "dropOldest") {
      let full = false
      while (this.sizes.bytes + size > this.options.maxBytes && Queue.sizeUnsafe(this.queue) > 0) {
        this.evict()
        full = true
      }
      if (Queue.isFullUnsafe(this.queue)) {
        this.evict()
        full = true
      }
      if (!this.enqueue(msg)) return false
      this.sizes.push(size)
      return !full
    }
    if (this.sizes.bytes + size > this.options.maxBytes || !this.enqueue(msg)) return false
    this.sizes.push(size)
    if (this.options.eager === true) Queue.flushUnsafe(this.queue)
    return true
  }

  /** A chunk handed out, as messages (those held as bytes made messages again); its bytes no longer buffered. */
  take(chunk: Arr.NonEmptyReadonlyArray<Entry>): Arr.NonEmptyReadonlyArray<Msg> {
    // nothing held as bytes: the chunk is messages already
    const taken = this.ring.size === 0 ? chunk as Arr.NonEmptyReadonlyArray<Msg> : this.unhold(chunk)
    this.takenBytes = this.sizes.shift(chunk.length)
    return taken
  }

  /** The chunk's messages, those held as bytes made messages again. */
  private unhold(chunk: Arr.NonEmptyReadonlyArray<Entry>): Arr.NonEmptyReadonlyArray<Msg> {
    let messages: Array<Msg> | undefined
    for (let i = 0; i < chunk.length;) {
      if (chunk[i] !== HELD) {
        if (messages !== undefined) messages.push(chunk[i] as Msg)
        i++
        continue
      }
      messages ??= chunk.slice(0, i) as Array<Msg>
      let run = 1
      while (chunk[i + run] === HELD) run++
      this.ring.shift(run, messages)
      i += run
    }
    return (messages ?? chunk) as Arr.NonEmptyReadonlyArray<Msg>
  }

  /** Queues a message, or its token and its bytes in the ring; false when the queue refused it (full, or ended). */
  private enqueue(msg: Msg): boolean {
    if (Queue.sizeUnsafe(this.queue) < this.holdFrom || !MessageRing.holds(msg)) {
      return Queue.offerUnsafe(this.queue, msg)
    }
    if (!Queue.offerUnsafe(this.queue, HELD)) return false
    this.ring.push(msg)
    return true
  }

  private evict(): void {
    const oldest = Queue.takeUnsafe(this.queue)
    if (oldest === undefined || oldest._tag !== "Success") return
    if (oldest.value === HELD) this.ring.drop()
    this.sizes.shift(1)
  }
}

/**
 * Subscribes now (in the current scope). Messages go into a queue bounded by
 * count and by payload bytes; the subscription ends when the scope closes.
 */
export const acquire = (
  core: NatsCore,
  subject: string,
  options: BridgeOptions
): Effect.Effect<Acquired, NatsError.NatsError, Scope.Scope> => {
  const nc = core.connection
  const hooks = core.bridge
  return Effect.flatMap(
    Effect.zip(
      Queue.make<Entry, NatsError.NatsError | Cause.Done>({
        capacity: options.bufferSize,
        strategy: options.overflow === "dropOldest" ? "sliding" : "dropping"
      }),
      Effect.context<never>()
    ),
    ([queue, context]) => {
      let unsubscribed = false
      const buffer = new BoundedBuffer(queue, options)
      let sub: Subscription | undefined
      // the metrics of the subscription's pattern, updated a chunk at a time
      const receivedCount = Metrics.receivedOf(subject)
      const receivedBytes = Metrics.receivedBytesOf(subject)
      const buffered = Metrics.bufferedOf(subject)
      // chunks of at most `chunkSize`: a chunk's messages are all alive until the reader is past them
      const messages = Stream.fromPull(Effect.succeed(Effect.map(
        Queue.takeBetween(queue, 1, chunkSize),
        (chunk) => {
          const taken = buffer.take(chunk as unknown as Arr.NonEmptyReadonlyArray<Entry>)
          receivedCount.updateUnsafe(chunk.length, context)
          if (buffer.takenBytes > 0) receivedBytes.updateUnsafe(buffer.takenBytes, context)
          buffered.updateUnsafe(Queue.sizeUnsafe(queue), context)
          return taken
        }
      )))
      let confirmation: Promise<Error | undefined> = Promise.resolve(undefined)
      let droppedReported = 0
      const drops = new Drops(() => {
        Metrics.droppedOf(subject).updateUnsafe(drops.dropped - droppedReported, context)
        buffered.updateUnsafe(Queue.sizeUnsafe(queue), context)
        droppedReported = drops.dropped
        hooks.onSlowConsumer(subject, drops.dropped, options.bufferSize)
      })
      const confirmed = Effect.flatMap(
        Effect.tryPromise({ try: () => confirmation, catch: (cause) => fromUnknown(cause, { operation: "flush" }) }),
        (refused) =>
          refused === undefined ? Effect.void : Effect.fail(fromUnknown(refused, { operation: "subscribe", subject }))
      )
      // drained, not dropped: the server stops sending, what it sent before still arrives (nats.js
      // confirms by a round trip), then the Stream ends after it (when the subscription closes).
      // Disconnected, nothing more can arrive and the round trip would wait for a reconnect: it ends
      // at once, after what is buffered.
      const stop = () => {
        unsubscribed = true
        if (sub === undefined || sub.isClosed()) return Queue.endUnsafe(queue)
        if (!hooks.isConnected()) {
          sub.unsubscribe()
          return Queue.endUnsafe(queue)
        }
        sub.drain().catch(() => Queue.endUnsafe(queue))
      }
      return Effect.as(
        Effect.acquireRelease(
          Effect.try({
            try: () => {
              let failed = false
              const failWith = (error: NatsError.NatsError) => {
                failed = true
                Queue.failCauseUnsafe(queue, Cause.fail(error))
              }
              const overflow = (sub: Subscription) => {
                drops.drop()
                if (options.overflow === "fail") {
                  unsubscribed = true
                  sub.unsubscribe()
                  failWith(slowConsumer(
                    "subscribe",
                    subject,
                    options.bufferSize,
                    `subscription to ${subject} overflowed its buffer of ${options.bufferSize} messages / ${options.maxBytes} bytes (overflow: "fail")`
                  ))
                }
              }
              const subscription: Subscription = nc.subscribe(subject, {
                ...(options.queue === undefined ? {} : { queue: options.queue }),
                ...(options.max === undefined ? {} : { max: options.max }),
                callback: (err, msg) => {
                  if (failed) return
                  if (err !== null) return failWith(fromUnknown(err, { operation: "subscribe", subject }))
                  if (buffer.offer(msg)) drops.accepted()
                  else overflow(subscription)
                }
              })
              sub = subscription
              // at the account's subscription limit the server refuses the SUB without a word nats.js passes on
              confirmation = refusal(nc)
              confirmation.then((cause) => {
                if (cause === undefined || failed) return
                unsubscribed = true
                failWith(fromUnknown(cause, { operation: "subscribe", subject }))
                subscription.unsubscribe()
              }, () => undefined) // the connection ended: the subscription reports that
              subscription.closed.then(
                (err) => {
                  if (failed) return
                  if (err instanceof Error) return failWith(fromUnknown(err, { operation: "subscribe", subject }))
                  // nats.js closes every subscription before it marks the
                  // connection closed (`isClosed()` is still false here), so a
                  // subscription that ends neither by our unsubscribe, nor by
                  // reaching `max`, nor by a drain, ended with its connection.
                  const reachedMax = options.max !== undefined && subscription.getProcessed() >= options.max
                  if (!unsubscribed && !reachedMax && !subscription.isDraining() && !hooks.isReleasing()) {
                    return failWith(
                      connectionClosed("subscribe", `connection closed while subscribed to ${subject}`, { subject })
                    )
                  }
                  Queue.endUnsafe(queue)
                },
                (err) => failWith(fromUnknown(err, { operation: "subscribe", subject }))
              )
              return subscription
            },
            catch: (cause) => fromUnknown(cause, { operation: "subscribe", subject })
          }),
          (subscription) =>
            Effect.sync(() => {
              unsubscribed = true
              subscription.unsubscribe()
              drops.report()
            })
        ),
        { messages, stop, confirmed }
      )
    }
  )
}

/** A subscription as a Stream: subscribes when the stream starts, unsubscribes when it ends. */
export const subscribeStream = (
  core: NatsCore,
  subject: string,
  options: BridgeOptions
): Stream.Stream<Msg, NatsError.NatsError> =>
  Stream.unwrap(Effect.map(acquire(core, subject, options), (acquired) => acquired.messages))
