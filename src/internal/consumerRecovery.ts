/**
 * Recovery of a consumer's pulls: while the consumer or its stream is
 * missing, the session is opened again by a Schedule, each retry preceded by
 * a recovery step (recreate the consumer, or look it up again). A stalled
 * pull (no message, no heartbeat: see `consumerSession`) is opened again at
 * once, for as long as it takes (each stall is itself several heartbeats
 * long), after a check that the consumer is still there.
 *
 * @internal
 */
import type { JsMsg } from "@nats-io/jetstream"
import { Effect, Schedule, Stream } from "effect"
import type * as NatsError from "../schemas/NatsError.ts"
import { isMissingResource, isStalled } from "./consumerErrors.ts"

export interface RecoveryOptions {
  /** A fresh session. */
  readonly session: (afterStall: boolean) => Stream.Stream<JsMsg, NatsError.NatsError>
  /** The retries, fed the failure; only missing-resource failures are retried. */
  readonly schedule: Schedule.Schedule<unknown, NatsError.NatsError>
  /** Brings the consumer back (attempt from 1 since the last message); run before each retry. */
  readonly recover: (attempt: number, cause: NatsError.NatsError) => Effect.Effect<void, NatsError.NatsError>
  /** The handle is closing: nothing is retried. */
  readonly closing: () => boolean
  /** Run after a stall, before the pull opens again: fails with the missing-resource error when the consumer is gone. */
  readonly onStall: (cause: NatsError.NatsError) => Effect.Effect<void, NatsError.NatsError>
}

/** The pause before a stalled pull opens again. */
const afterStall = Schedule.spaced("100 millis")

/** The session, opened again after every stall. */
const resumingStalls = (options: RecoveryOptions): Stream.Stream<JsMsg, NatsError.NatsError> => {
  let stall: NatsError.NatsError | undefined
  const once = Stream.suspend(() => {
    const previous = stall
    stall = undefined
    const start = previous === undefined ? Stream.empty : Stream.drain(Stream.fromEffect(options.onStall(previous)))
    return Stream.concat(start, options.session(previous !== undefined)).pipe(
      Stream.tapError((error) =>
        Effect.sync(() => {
          if (isStalled(error)) stall = error
        })
      )
    )
  })
  return Stream.retry(once, Schedule.while(afterStall, ({ input }) => isStalled(input) && !options.closing()))
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
      Stream.mapArray(resumingStalls(options), (chunk) => {
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
