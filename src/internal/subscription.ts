/**
 * The bridge from a nats.js callback subscription to a bounded `Stream`.
 *
 * The server pushes; a Stream pulls. Messages go from the nats.js callback
 * into a bounded queue with an explicit overflow policy, so memory stays
 * bounded under a slow consumer and an overflow is always visible.
 *
 * @internal
 */
import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core"
import type { Scope } from "effect"
import { Cause, Effect, Queue, Stream } from "effect"
import * as E from "../schemas/NatsError.ts"
import { fromUnknown } from "./errors.ts"

/**
 * What a subscription does when its buffer is full.
 *
 * - `"fail"`: the stream fails with a `SlowConsumer` error (nothing is dropped
 *   silently; the subscription ends).
 * - `"dropNewest"`: the incoming message is dropped.
 * - `"dropOldest"`: the oldest buffered message is dropped.
 *
 * Dropping policies report a `SlowConsumer` connection event (and a warning
 * log) when overflow starts, with the count of messages dropped so far.
 */
export type Overflow = "fail" | "dropNewest" | "dropOldest"

export interface BridgeOptions {
  readonly queue?: string | undefined
  readonly max?: number | undefined
  readonly bufferSize: number
  readonly overflow: Overflow
}

export interface BridgeHooks {
  /** Called when a subscription starts overflowing. */
  readonly onSlowConsumer: (subject: string, dropped: number, bufferSize: number) => void
  /** True when the connection closes because the client itself released it. */
  readonly isReleasing: () => boolean
}

/**
 * Subscribes now (in the current scope) and returns the bounded queue the
 * messages arrive in; the subscription ends when the scope closes.
 */
export const acquire = (
  nc: NatsConnection,
  subject: string,
  options: BridgeOptions,
  hooks: BridgeHooks
): Effect.Effect<Queue.Dequeue<Msg, E.NatsError | Cause.Done>, E.NatsError, Scope.Scope> =>
  Effect.flatMap(
    Queue.make<Msg, E.NatsError | Cause.Done>({
      capacity: options.bufferSize,
      strategy: options.overflow === "dropOldest" ? "sliding" : "dropping"
    }),
    (queue) => {
      let unsubscribed = false
      return Effect.as(
        Effect.acquireRelease(
          Effect.try({
            try: () => {
              let dropped = 0
              let overflowing = false
              let failed = false
              const failWith = (error: E.NatsError) => {
                failed = true
                Queue.failCauseUnsafe(queue, Cause.fail(error))
              }
              const overflow = (sub: Subscription) => {
                dropped++
                if (options.overflow === "fail") {
                  unsubscribed = true
                  sub.unsubscribe()
                  failWith(
                    new E.NatsError({
                      reason: new E.SlowConsumer({
                        operation: "subscribe",
                        subject,
                        bufferSize: options.bufferSize,
                        message:
                          `subscription to ${subject} overflowed its buffer of ${options.bufferSize} messages (overflow: "fail")`
                      })
                    })
                  )
                }
                if (!overflowing) {
                  overflowing = true
                  hooks.onSlowConsumer(subject, dropped, options.bufferSize)
                }
              }
              const sub: Subscription = nc.subscribe(subject, {
                ...(options.queue === undefined ? {} : { queue: options.queue }),
                ...(options.max === undefined ? {} : { max: options.max }),
                callback: (err, msg) => {
                  if (failed) return
                  if (err !== null) return failWith(fromUnknown(err, { operation: "subscribe", subject }))
                  if (options.overflow === "dropOldest") {
                    const full = Queue.isFullUnsafe(queue)
                    Queue.offerUnsafe(queue, msg)
                    if (full) overflow(sub)
                    else overflowing = false
                  } else if (Queue.offerUnsafe(queue, msg)) {
                    overflowing = false
                  } else {
                    overflow(sub)
                  }
                }
              })
              sub.closed.then(
                (err) => {
                  if (failed) return
                  if (err instanceof Error) return failWith(fromUnknown(err, { operation: "subscribe", subject }))
                  // nats.js closes every subscription before it marks the
                  // connection closed (`isClosed()` is still false here), so a
                  // subscription that ends neither by our unsubscribe, nor by
                  // reaching `max`, nor by a drain, ended with its connection.
                  const reachedMax = options.max !== undefined && sub.getProcessed() >= options.max
                  if (!unsubscribed && !reachedMax && !sub.isDraining() && !hooks.isReleasing()) {
                    return failWith(
                      new E.NatsError({
                        reason: new E.ConnectionClosed({
                          operation: "subscribe",
                          subject,
                          message: `connection closed while subscribed to ${subject}`
                        })
                      })
                    )
                  }
                  Queue.endUnsafe(queue)
                },
                (err) => failWith(fromUnknown(err, { operation: "subscribe", subject }))
              )
              return sub
            },
            catch: (cause) => fromUnknown(cause, { operation: "subscribe", subject })
          }),
          (sub) =>
            Effect.sync(() => {
              unsubscribed = true
              sub.unsubscribe()
            })
        ),
        queue
      )
    }
  )

/** A subscription as a Stream: subscribes when the stream starts, unsubscribes when it ends. */
export const subscribeStream = (
  nc: NatsConnection,
  subject: string,
  options: BridgeOptions,
  hooks: BridgeHooks
): Stream.Stream<Msg, E.NatsError> => Stream.unwrap(Effect.map(acquire(nc, subject, options, hooks), Stream.fromQueue))
