/**
 * The Processor's metrics: messages by outcome and handlers in flight.
 * Acks (the common outcome) and the in-flight gauge are counted in plain
 * numbers and reported in batches: a metric update per message would cost
 * more than the ack.
 *
 * @internal
 */
import { Effect, Metric } from "effect"

/** Messages by outcome (attribute `outcome`). */
export const messages = Metric.counter("effect_nats_processor_messages", {
  description: "JetStream messages handled by effect-nats processors, by outcome",
  incremental: true
})

/** Handlers running now. */
export const inFlight = Metric.gauge("effect_nats_processor_in_flight", {
  description: "Handlers of effect-nats processors running now"
})

/** What became of a message. */
export type Outcome = "acked" | "retried" | "dead_lettered" | "termed" | "decode_failed" | "interrupted"

const outcomes: ReadonlyArray<Outcome> = ["acked", "retried", "dead_lettered", "termed", "decode_failed", "interrupted"]

/** Messages between two reports at most. */
const REPORT_EVERY = 256

/** The metrics of one processor (attributes `stream` and `consumer`). */
export class ProcessorMetrics {
  /** `count(outcome)`: one more message with that outcome (built once per outcome, not per message). */
  readonly count: (outcome: Outcome) => Effect.Effect<void>
  /** Reports the acks and the in-flight change counted since the last report. */
  readonly report: Effect.Effect<void>
  /** Handlers running now. */
  active = 0
  private acked = 0
  private activeReported = 0
  private sinceReport = 0

  constructor(stream: string, consumer: string) {
    const counters = new Map(
      outcomes.map((outcome) => [outcome, Metric.withAttributes(messages, { outcome, stream, consumer })])
    )
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

  /** One more ack (reported with the next batch). */
  ack(): void {
    this.acked++
  }

  /** Whether a worker should report now (every `REPORT_EVERY` messages). */
  due(): boolean {
    return ++this.sinceReport >= REPORT_EVERY
  }
}
