/**
 * The pipeline of a JetStream `publishAll`: a producer fiber reads the input
 * and sends while the window of outstanding acks has room; the returned pull
 * emits the settled acks in input order and fails at the first message (in
 * input order) that failed.
 *
 * With a `retry` Schedule, a retryable failure at the head (the stream had
 * no leader, the connection dropped, an ack timed out) is not the end: the
 * producer pauses, the acks still in flight are awaited, and after the
 * schedule's delay every message that failed is sent again (with the same
 * `Nats-Msg-Id`, so a message stored by an attempt whose ack was lost is
 * acked as a duplicate, not stored twice); then the producer goes on. The
 * schedule starts afresh once the head moves.
 *
 * @internal
 */
import type { MsgHdrs } from "@nats-io/nats-core"
import { nuid } from "@nats-io/nats-core"
import type { Context, Duration, Scope } from "effect"
import { Cause, Clock, Effect, Exit, Result, Schedule } from "effect"
import type * as Arr from "effect/Array"
import * as Pull from "effect/Pull"
import * as NatsError from "../schemas/NatsError.ts"
import type { OutgoingMessage, PublishedAck } from "../services/JetStream.ts"
import type { NatsCore } from "./core.ts"
import { jsFromUnknown } from "./jsErrors.ts"
import type { Ack } from "./jsPublish.ts"
import * as JsPublish from "./jsPublish.ts"
import * as Metrics from "./metrics.ts"
import type { Slot } from "./publishWindow.ts"
import { PublishWindow } from "./publishWindow.ts"
import * as TraceContext from "./traceContext.ts"
import { headers as checkedHeaders } from "./validation.ts"

const operation = "JetStream.publishAll"

/** The message that failed, and why. */
export interface Failed {
  readonly index: number
  readonly subject: string
  readonly msgId: string | undefined
  readonly error: NatsError.NatsError
  /** The acks of messages after it that came in before the failure was raised. */
  readonly later: ReadonlyArray<PublishedAck>
}

export interface PipelineOptions<F> {
  readonly core: NatsCore
  /** The JetStream API prefix (see `JsPublish.Target`). */
  readonly apiPrefix: string
  /** Acks outstanding at most. */
  readonly capacity: number
  readonly timeoutMillis: number
  /** Retries of retryable failures; messages without a `msgId` get one. */
  readonly retry: Schedule.Schedule<unknown, NatsError.NatsError> | undefined
  /** The failure of the stream for the message that failed. */
  readonly failure: (failed: Failed) => F
  /** The batch span's `traceparent`, added to every message (when the caller has a span). */
  readonly traceparent?: string | undefined
  /** Where the published messages are counted (the metrics' registry). */
  readonly context: Context.Context<never>
}

/** Sends messages into the window (a message that fails before it is sent takes its slot, failed). */
const sender = (options: PipelineOptions<unknown>, window: PublishWindow<Ack>) => {
  const { requests, validation } = options.core
  const target: JsPublish.Target = {
    mux: requests,
    operation,
    apiPrefix: options.apiPrefix,
    jetstream: options.core.jetstream
  }
  const { retry, timeoutMillis, traceparent } = options
  let index = 0
  const send = (msg: OutgoingMessage): void => {
    const i = index++
    const { payload, subject } = msg
    // a retried message needs an id: the stream then stores it once, whichever attempt got through
    const msgId = msg.msgId ?? (retry === undefined ? undefined : nuid.next())
    let hdrs: MsgHdrs | undefined
    try {
      const checked = checkedHeaders(msg.headers, subject, operation)
      if (NatsError.isNatsError(checked)) return window.reject(i, subject, msgId, checked)
      hdrs = checked
      const invalid = validation.message(subject, payload, hdrs, operation)
      if (invalid !== undefined) return window.reject(i, subject, msgId, invalid)
      const plain = JsPublish.headersOf(hdrs, msgId, msg.expect)
      const headers = traceparent === undefined ? plain : TraceContext.addTraceparent(plain, traceparent)
      JsPublish.send(target, subject, payload, headers, timeoutMillis, window.open(i, subject, msgId, payload, headers))
      Metrics.countPublished(subject, Metrics.sizeOf(payload), options.context, msg.destination)
    } catch (cause) {
      window.reject(i, subject, msgId, cause)
    }
  }
  const resend = (slot: Slot<Ack>): void => {
    const done = window.reopen(slot)
    try {
      JsPublish.send(target, slot.subject, slot.payload, slot.headers, timeoutMillis, done)
    } catch (cause) {
      done(Result.fail(cause))
    }
  }
  return { send, resend }
}

/** Starts the producer in `scope`; returns the pull of settled acks. */
export const make = <E2, F>(
  upstream: Pull.Pull<Arr.NonEmptyReadonlyArray<OutgoingMessage>, E2, void>,
  scope: Scope.Scope,
  options: PipelineOptions<F>
): Effect.Effect<Pull.Pull<Arr.NonEmptyReadonlyArray<PublishedAck>, F | E2, void>> =>
  Effect.gen(function*() {
    const window = new PublishWindow<Ack>(options.capacity)
    const { resend, send } = sender(options as PipelineOptions<unknown>, window)
    let upstreamFailure: Cause.Cause<E2> | undefined

    const produce = Effect.gen(function*() {
      while (true) {
        const exit = yield* Effect.exit(upstream)
        if (Exit.isFailure(exit)) {
          if (!Pull.isDoneCause(exit.cause)) upstreamFailure = exit.cause as Cause.Cause<E2>
          return window.end()
        }
        for (const msg of exit.value) {
          if (window.isFull) yield* window.awaitRoom
          if (window.failed) yield* window.awaitResume
          if (window.stopped) return window.end()
          send(msg)
        }
      }
    })
    yield* Effect.forkIn(produce, scope)

    const errorOf = (slot: Slot<Ack>): NatsError.NatsError =>
      jsFromUnknown(slot.error, {
        operation,
        subject: slot.subject,
        publish: true,
        timeoutMillis: options.timeoutMillis
      })

    // one shape for every ack (a literal: cheaper than a spread on this path)
    const published = (slot: Slot<Ack>): PublishedAck => {
      const ack = slot.value as Ack
      return {
        stream: ack.stream,
        seq: ack.seq,
        duplicate: ack.duplicate,
        domain: ack.domain,
        index: slot.index,
        msgId: slot.msgId
      }
    }

    /** The end: once the acks in flight are in, the failure with the acks that came after it. */
    const fail = (head: Slot<Ack>, error: NatsError.NatsError) =>
      Effect.gen(function*() {
        window.stop()
        yield* window.awaitSettled
        const later: Array<PublishedAck> = []
        window.forEach((slot) => {
          if (slot.state === 1) later.push(published(slot))
        })
        return yield* Effect.fail(
          options.failure({ index: head.index, subject: head.subject, msgId: head.msgId, error, later })
        )
      })

    // the retry schedule's step, for the current run of failures (reset when the head moves)
    let step:
      | ((now: number, input: NatsError.NatsError) => Pull.Pull<[unknown, Duration.Duration], never, unknown>)
      | undefined

    /** A retryable failure at the head: once the acks in flight are in, every failed message again. */
    const retryFailed = (
      head: Slot<Ack>,
      error: NatsError.NatsError,
      schedule: Schedule.Schedule<unknown, NatsError.NatsError>
    ) =>
      Effect.gen(function*() {
        yield* window.awaitSettled
        step ??= yield* Schedule.toStep(schedule)
        const next = yield* Effect.exit(step(yield* Clock.currentTimeMillis, error))
        if (Exit.isFailure(next)) return yield* fail(head, error)
        yield* Effect.logDebug(`nats: publishAll retries from message ${head.index}`, error.message)
        yield* Effect.sleep(next.value[1])
        let final = false
        window.forEach((slot) => {
          if (slot.state !== 2) return
          if (errorOf(slot).isRetryable) resend(slot)
          else final = true
        })
        // a message that failed for good stops the producer where it is: the stream fails when it reaches the head
        if (!final) window.resume()
      })

    const pull: Pull.Pull<Arr.NonEmptyReadonlyArray<PublishedAck>, F | E2, void> = Effect.suspend(() => {
      const head = window.peek()
      if (head === undefined) {
        if (!window.ended) return Effect.flatMap(window.awaitHead, () => pull)
        return upstreamFailure === undefined ? Cause.done() : Effect.failCause(upstreamFailure)
      }
      if (head.state === 0) return Effect.flatMap(window.awaitHead, () => pull)
      const out: Array<PublishedAck> = []
      let slot = head
      while (slot.state === 1) {
        out.push(published(slot))
        window.shift()
        const next = window.peek()
        if (next === undefined) break
        slot = next
      }
      window.wakeProducer()
      if (out.length > 0) {
        step = undefined
        return Effect.succeed(out as unknown as Arr.NonEmptyReadonlyArray<PublishedAck>)
      }
      // the head failed (it stays at the head: pulling again fails again)
      const error = errorOf(slot)
      return options.retry !== undefined && error.isRetryable && !window.stopped
        ? Effect.flatMap(retryFailed(slot, error, options.retry), () => pull)
        : fail(slot, error)
    })
    return pull
  })
