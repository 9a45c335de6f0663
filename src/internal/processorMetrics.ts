/**
 * The Processor's metrics: messages by outcome and handlers in flight.
 * Acks (the common outcome) and the in-flight gauge are counted in plain
 * numbers and reported in batches: a metric update per message would cost
 * more than the ack.
 *
 * @internal
 */
import type { JsMsg } from "@nats-io/jetstream"
import type { Context } from "effect"
import { Effect, Metric } from "effect"
import type { MessageOutcome, Outcome } from "../services/Processor.ts"
import { storedMillis } from "./ackReply.ts"
import * as Metrics from "./metrics.ts"

const messagesWith = Metrics.counter(
  "effect_nats_processor_messages",
  "JetStream messages handled by effect-nats processors, by outcome"
)

/** Messages by outcome (attribute `outcome`). */
export const messages = messagesWith()

/** Handlers running now. */
export const inFlight = Metric.gauge("effect_nats_processor_in_flight", {
  description: "Handlers of effect-nats processors running now"
})

export type { Outcome }

const outcomes: ReadonlyArray<Outcome> = ["acked", "retried", "dead_lettered", "termed", "decode_failed", "interrupted"]

/** Messages between two reports at most. */
const REPORT_EVERY = 256

/** The metrics of one processor (attributes `stream` and `consumer`). */
export class ProcessorMetrics {
  /** `count(outcome)`: one more message with that outcome (built once per outcome, not per message). */
  private readonly count: (outcome: Outcome) => Effect.Effect<void>
  private readonly observer: ((outcome: MessageOutcome) => void) | undefined
  /** Reports the acks and the in-flight change counted since the last report. */
  readonly report: Effect.Effect<void>
  /** Handlers running now. */
  active = 0
  private acked = 0
  private activeReported = 0
  private sinceReport = 0
  private readonly processing: Metrics.HistogramSeries
  private readonly age: Metrics.HistogramSeries
  /** The consumer's lag (`num_pending`, `num_ack_pending`), set by `lag`. */
  readonly pending: Metric.Metric<number, unknown>
  readonly ackPending: Metric.Metric<number, unknown>

  constructor(
    stream: string,
    consumer: string,
    context: Context.Context<never>,
    observer?: ((outcome: MessageOutcome) => void) | undefined
  ) {
    this.observer = observer
    const attributes = { stream, consumer }
    // an observation per message: counted in plain numbers, read by the registry (see `HistogramSeries`)
    this.processing = Metrics.HistogramSeries.of(Metrics.processingDurationWith, attributes, context)
    this.age = Metrics.HistogramSeries.of(Metrics.messageAgeWith, attributes, context)
    // built with their attributes (see `Metrics`)
    this.pending = Metrics.consumerPendingWith(attributes)
    this.ackPending = Metrics.consumerAckPendingWith(attributes)
    const counters = new Map(outcomes.map((outcome) => [outcome, messagesWith({ outcome, stream, consumer })]))
    const increments = new Map([...counters].map(([outcome, counter]) => [outcome, Metric.update(counter, 1)]))
    this.count = (outcome) => increments.get(outcome) ?? Effect.void
    const ackCounter = counters.get("acked")
    this.report = Effect.suspend(() => {
      this.sinceReport = 0
      const acked = this.acked
      const delta = this.active - this.activeReported
      this.acked = 0
      this.activeReported = this.active
      return Effect.andThen(
        acked === 0 || ackCounter === undefined ? Effect.void : Metric.update(ackCounter, acked),
        delta === 0 ? Effect.void : Metric.modify(inFlight, delta)
      )
    })
  }

  /** One more message with that outcome (counted, and told to the observer). */
  outcome(outcome: Outcome, msg: JsMsg, detail: string): Effect.Effect<void> {
    const counted = this.count(outcome)
    return this.observer === undefined ? counted : Effect.andThen(
      counted,
      Effect.sync(() => this.tell(outcome, msg, detail))
    )
  }

  /** A message taken: its age (now - stored). */
  taken(msg: JsMsg): void {
    // nats.js' JsMsg has its reply subject, untyped
    const stored = storedMillis((msg as unknown as { readonly reply?: string }).reply)
    if (stored !== undefined) this.age.observe(Math.max(0, Date.now() - stored))
  }

  /** A handler's duration. */
  handled(millis: number): void {
    this.processing.observe(millis)
  }

  /** One more ack (reported with the next batch). */
  ack(msg: JsMsg): void {
    this.acked++
    if (this.observer !== undefined) this.tell("acked", msg, undefined)
  }

  private tell(outcome: Outcome, msg: JsMsg, detail: string | undefined): void {
    try {
      const info = msg.info
      this.observer?.({
        outcome,
        subject: msg.subject,
        streamSequence: info.streamSequence,
        deliveryCount: info.deliveryCount,
        detail
      })
    } catch {
      // the observer's own failure: the message is settled all the same
    }
  }

  /** Whether a worker should report now (every `REPORT_EVERY` messages). */
  due(): boolean {
    return ++this.sinceReport >= REPORT_EVERY
  }
}
