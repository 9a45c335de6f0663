/**
 * Recovery of a consumer's pulls: while the consumer or its stream is
 * missing, the session is opened again by a Schedule, each retry preceded by
 * a recovery step (recreate the consumer, or look it up again).
 *
 * @internal
 */
import type { JsMsg } from "@nats-io/jetstream"
import { Effect, Schedule, Stream } from "effect"
import type * as NatsError from "../schemas/NatsError.ts"
import { isMissingResource } from "./consumerErrors.ts"

export interface RecoveryOptions {
  /** A fresh session. */
  readonly session: () => Stream.Stream<JsMsg, NatsError.NatsError>
  /** The retries, fed the failure; only missing-resource failures are retried. */
  readonly schedule: Schedule.Schedule<unknown, NatsError.NatsError>
  /** Brings the consumer back (attempt from 1 since the last message); run before each retry. */
  readonly recover: (attempt: number, cause: NatsError.NatsError) => Effect.Effect<void, NatsError.NatsError>
  /** The handle is closing: nothing is retried. */
  readonly closing: () => boolean
}

/** The session, retried by the schedule while the consumer or its stream is missing. */
export const withRecovery = (options: RecoveryOptions): Stream.Stream<JsMsg, NatsError.NatsError> => {
  let failure: NatsError.NatsError | undefined
  let attempt = 0
  const once = Stream.suspend(() => {
    const previous = failure
    failure = undefined
    const start = previous === undefined
      ? Stream.empty
      : Stream.drain(Stream.fromEffect(options.recover(++attempt, previous)))
    // The failure is recorded whether the recovery step or the session
    // failed, so that every retry recovers first.
    return Stream.concat(
      start,
      // chunk-wise (a `Stream.tap` would hand on one message per chunk)
      Stream.mapArray(options.session(), (chunk) => {
        attempt = 0
        return chunk
      })
    ).pipe(
      Stream.tapError((error) =>
        Effect.sync(() => {
          if (isMissingResource(error)) failure = error
        })
      )
    )
  })
  return Stream.retry(
    once,
    Schedule.while(options.schedule, ({ input }) => isMissingResource(input) && !options.closing())
  )
}
