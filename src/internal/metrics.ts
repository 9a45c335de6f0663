/**
 * The library's metrics, through Effect's `Metric` (any exporter installed
 * for Effect sees them: `effect/observability`'s OTLP and Prometheus).
 *
 * Attributes are bounded: a subject *family* (the subscription's pattern, a
 * `TypedSubject`'s template, or for a publish the subject's first token and
 * `.>`), a stream and consumer, an outcome; never a raw subject. Hot paths
 * update them a chunk at a time, or once per message with the metric built
 * once per family (`updateUnsafe` with a context captured once); the
 * Processor's per-message histograms are `HistogramSeries` (below).
 *
 * A metric with attributes is built with them (`*With`, `perFamily`), not
 * wrapped by `Metric.withAttributes`: Effect keeps a metric's series key
 * for one attribute set at a time, so two families of one wrapped metric,
 * updated in turn, make the key again (a JSON of the attributes) at every
 * update, ten times the update's own cost; and a wrapper adds to the
 * context at every update. Built with its attributes, a metric addresses the
 * same series as the wrapped one; the one difference is precedence: an
 * attribute of the same name in the caller's context (`subject`, `stream`,
 * `consumer`, `outcome`) now wins over the library's.
 *
 * @internal
 */
import { Context, Metric } from "effect"

/** A metric's constructor: with no attributes, the metric; with some, its series for them. */
export type Make<M> = (attributes?: Metric.Metric.Attributes) => M

export const counter = (id: string, description: string): Make<Metric.Counter<number>> => (attributes) =>
  Metric.counter(id, { description, incremental: true, attributes })

const gauge = (id: string, description: string): Make<Metric.Gauge<number>> => (attributes) =>
  Metric.gauge(id, { description, attributes })

/** A histogram's constructor, with its boundaries (for `HistogramSeries`). */
export interface MakeHistogram extends Make<Metric.Histogram<number>> {
  readonly id: string
  readonly boundaries: ReadonlyArray<number>
}

const histogram = (id: string, description: string, boundaries: ReadonlyArray<number>): MakeHistogram =>
  Object.assign(
    (attributes?: Metric.Metric.Attributes) => Metric.histogram(id, { description, boundaries, attributes }),
    { id, boundaries }
  )

/** Milliseconds, for latencies: 0.1 ms to 10 s. */
const latencyBoundaries = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000]

/** Milliseconds, for the age of a stored message: 1 ms to an hour. */
const ageBoundaries = [1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 60_000, 300_000, 3_600_000]

export const publishedWith = counter(
  "effect_nats_messages_published",
  "Messages published by effect-nats (core and JetStream), by subject family"
)
export const published = publishedWith()

export const publishedBytesWith = counter(
  "effect_nats_published_bytes",
  "Payload bytes published by effect-nats, by subject family"
)
export const publishedBytes = publishedBytesWith()

export const receivedWith = counter(
  "effect_nats_messages_received",
  "Messages received by effect-nats subscriptions, by subject family (the subscription's pattern)"
)
export const received = receivedWith()

export const receivedBytesWith = counter(
  "effect_nats_received_bytes",
  "Payload bytes received by effect-nats subscriptions, by subject family"
)
export const receivedBytes = receivedBytesWith()

export const consumedWith = counter(
  "effect_nats_consumer_messages_received",
  "JetStream messages received by effect-nats consumers (consume, fetch, next, processors), by stream and consumer"
)
export const consumed = consumedWith()

export const requestDurationWith = histogram(
  "effect_nats_request_duration_ms",
  "Request/reply round trips of effect-nats, in milliseconds, by subject family",
  latencyBoundaries
)
export const requestDuration = requestDurationWith()

export const processingDurationWith = histogram(
  "effect_nats_processing_duration_ms",
  "Handler durations of effect-nats processors, in milliseconds, by stream and consumer",
  latencyBoundaries
)
export const processingDuration = processingDurationWith()

export const messageAgeWith = histogram(
  "effect_nats_message_age_ms",
  "Age of JetStream messages when a processor takes them (now - stored), in milliseconds",
  ageBoundaries
)
export const messageAge = messageAgeWith()

export const reconnects = counter("effect_nats_reconnects", "Reconnections of effect-nats connections")()

export const slowConsumerDroppedWith = counter(
  "effect_nats_slow_consumer_dropped",
  "Messages dropped by full effect-nats subscription buffers, by subject family"
)
export const slowConsumerDropped = slowConsumerDroppedWith()

export const bufferedWith = gauge(
  "effect_nats_subscription_buffered",
  "Messages waiting in an effect-nats subscription's buffer, as last seen (when the Stream took a chunk, or a drop), by pattern"
)
export const buffered = bufferedWith()

export const consumerPendingWith = gauge(
  "effect_nats_consumer_pending",
  "Messages of a JetStream consumer not yet delivered (num_pending), by stream and consumer"
)
export const consumerPending = consumerPendingWith()

export const consumerAckPendingWith = gauge(
  "effect_nats_consumer_ack_pending",
  "Messages of a JetStream consumer delivered and not yet acked (num_ack_pending), by stream and consumer"
)
export const consumerAckPending = consumerAckPendingWith()

/** Subject families kept per metric at most; more go under `other` (a family per raw subject is a mistake). */
const MAX_FAMILIES = 1000

/**
 * A metric per subject family (attribute `subject`), each built once: the
 * family's metric, or `other`'s beyond `MAX_FAMILIES`.
 */
export const perFamily = <M>(make: Make<M>) => {
  const cache = new Map<string, M>()
  return (family: string): M => {
    const found = cache.get(family)
    if (found !== undefined) return found
    const key = cache.size < MAX_FAMILIES ? family : "other"
    const made = cache.get(key) ?? make({ subject: key })
    cache.set(key, made)
    return made
  }
}

/** The family of a published subject: its first token, and `.>` when it has more. */
export const familyOf = (subject: string): string => {
  const dot = subject.indexOf(".")
  return dot < 0 ? subject : `${subject.slice(0, dot)}.>`
}

export const publishedOf = perFamily(publishedWith)
export const publishedBytesOf = perFamily(publishedBytesWith)
export const receivedOf = perFamily(receivedWith)
export const receivedBytesOf = perFamily(receivedBytesWith)
export const requestDurationOf = perFamily(requestDurationWith)
export const droppedOf = perFamily(slowConsumerDroppedWith)
export const bufferedOf = perFamily(bufferedWith)

/** Counts one published message of `size` bytes. */
export const countPublished = (
  subject: string,
  size: number,
  context: Context.Context<never>,
  destination?: string | undefined
): void => {
  const family = destination ?? familyOf(subject)
  publishedOf(family).updateUnsafe(1, context)
  if (size > 0) publishedBytesOf(family).updateUnsafe(size, context)
}

/** A payload's size in bytes. */
export const sizeOf = (payload: unknown): number =>
  payload instanceof Uint8Array ? payload.length : typeof payload === "string" ? Buffer.byteLength(payload) : 0

/**
 * Published messages counted in plain numbers while their subject stays
 * the same (the common case of a batch), reported at each change and on
 * `flush`: a string comparison per message, not a metric update.
 */
export class PublishTally {
  private subject: string | undefined
  private destination: string | undefined
  private count = 0
  private bytes = 0
  private readonly context: Context.Context<never>

  constructor(context: Context.Context<never>) {
    this.context = context
  }

  add(subject: string, payload: unknown, destination: string | undefined): void {
    if (subject !== this.subject || destination !== this.destination) {
      this.flush()
      this.subject = subject
      this.destination = destination
    }
    this.count++
    this.bytes += sizeOf(payload)
  }

  flush(): void {
    if (this.count === 0 || this.subject === undefined) return
    const family = this.destination ?? familyOf(this.subject)
    publishedOf(family).updateUnsafe(this.count, this.context)
    if (this.bytes > 0) publishedBytesOf(family).updateUnsafe(this.bytes, this.context)
    this.count = 0
    this.bytes = 0
  }
}

/**
 * A histogram series counted in plain numbers and read by the registry when
 * metrics are read (`Metric.registerUnsafe`), for an observation per
 * message: `Metric`'s own update finds the series in the registry at every
 * update (two context reads and a map lookup), which at a Processor's rate
 * cost more than the ack (0.83 of raw nats.js with two such histograms, 0.95
 * without). Here an observation is a few comparisons and adds.
 *
 * One per series and registry (`HistogramSeries.of`): processors of the same
 * stream and consumer add to the same one. It is registered at its first
 * observation. Its series answers reads only; a `Metric.update` of the same
 * series (the same id and attributes) elsewhere is ignored, and once removed
 * from the registry (`Metric.remove`) it is not made again.
 */
export class HistogramSeries {
  private readonly bounds: Float64Array
  /** Per bucket (the last: above every boundary). */
  private readonly counts: Float64Array
  private count = 0
  private sum = 0
  private min = Number.MAX_VALUE
  private max = -Number.MAX_VALUE
  /** Registers the series: at the first observation (as Effect's own series appear at their first update). */
  private register: (() => void) | undefined

  private constructor(boundaries: ReadonlyArray<number>, register: (series: HistogramSeries) => void) {
    this.bounds = Float64Array.from(boundaries).sort()
    this.counts = new Float64Array(boundaries.length + 1)
    this.register = () => register(this)
  }

  /** The series of `make` for `attributes` in `context`'s registry (and with its attributes), made and registered once. */
  static of(
    make: MakeHistogram,
    attributes: Metric.Metric.Attributes,
    context: Context.Context<never>
  ): HistogramSeries {
    const registry = Context.get(context, Metric.MetricRegistry)
    let byKey = registered.get(registry)
    if (byKey === undefined) {
      byKey = new Map()
      registered.set(registry, byKey)
    }
    // the attributes of the context win, as for a metric built with its attributes
    const merged = { ...attributes, ...Context.get(context, Metric.CurrentMetricAttributes) }
    const key = `${make.id}${JSON.stringify(Object.entries(merged).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))}`
    const found = byKey.get(key)
    if (found !== undefined) return found
    const series = new HistogramSeries(make.boundaries, (self) => {
      Metric.registerUnsafe(make(attributes), context, {
        get: () => self.state(),
        update: () => undefined,
        modify: () => undefined
      })
    })
    byKey.set(key, series)
    return series
  }

  observe(value: number): void {
    if (this.register !== undefined) {
      const register = this.register
      this.register = undefined
      register()
    }
    const bounds = this.bounds
    let i = 0
    // linear: the common values (milliseconds) are in the first buckets; NaN in the last, as Effect's
    while (i < bounds.length && !(value <= (bounds[i] ?? Infinity))) i++
    this.counts[i] = (this.counts[i] ?? 0) + 1
    this.count++
    this.sum += value
    if (value < this.min) this.min = value
    if (value > this.max) this.max = value
  }

  /** As Effect's histograms read: cumulative counts at each boundary. */
  state(): Metric.HistogramState {
    const buckets: Array<[number, number]> = []
    let cumulated = 0
    for (let i = 0; i < this.bounds.length; i++) {
      cumulated += this.counts[i] ?? 0
      buckets.push([this.bounds[i] ?? 0, cumulated])
    }
    return { buckets, count: this.count, min: this.min, max: this.max, sum: this.sum }
  }
}

/** The `HistogramSeries` of each registry, by series. */
const registered = new WeakMap<Metric.MetricRegistry, Map<string, HistogramSeries>>()
