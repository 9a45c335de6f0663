/**
 * `HistogramSeries` against Effect's own histogram: the same observations
 * read back the same through `Metric.value` and `Metric.snapshot`, and one
 * series per registry and attributes.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Metric, Schema } from "effect"
import * as Metrics from "../../src/internal/metrics.ts"

const registry = () => Context.make(Metric.MetricRegistry, new Map())

// any value, or one on a boundary (which bucket it falls in is where two histograms could disagree)
const Value = Schema.Union([
  Schema.Number.check(Schema.isBetween({ minimum: 0, maximum: 5_000_000 })),
  Schema.Literals([0, 1, 5, 10, 50, 100, 500, 1000, 5000, 10_000, 60_000, 300_000, 3_600_000])
])

describe("HistogramSeries", () => {
  it.prop(
    "reads as Effect's histogram of the same values (buckets, count, min, max, sum)",
    [Schema.Array(Value)],
    ([values]) => {
      const ours = registry()
      const effects = registry()
      const attributes = { stream: "S", consumer: "c" }
      const series = Metrics.HistogramSeries.of(Metrics.messageAgeWith, attributes, ours)
      const reference = Metrics.messageAgeWith(attributes)
      for (const value of values) {
        series.observe(value)
        reference.updateUnsafe(value, effects)
      }
      const read = Metric.withAttributes(Metrics.messageAge, attributes)
      const actual = read.valueUnsafe(ours)
      const expected = read.valueUnsafe(effects)
      assert.deepStrictEqual(actual.buckets, expected.buckets)
      assert.strictEqual(actual.count, expected.count)
      assert.strictEqual(actual.min, expected.min)
      assert.strictEqual(actual.max, expected.max)
      assert.closeTo(actual.sum, expected.sum, 1e-6 * Math.max(1, expected.sum))
      // and an exporter sees the one series, with its attributes
      const snapshots = Metric.snapshotUnsafe(ours)
      assert.strictEqual(snapshots.length, 1)
      assert.deepStrictEqual(snapshots[0]?.attributes, attributes)
      assert.strictEqual(snapshots[0]?.type, "Histogram")
    }
  )

  it("one series per registry and attributes; the context's attributes are part of them", () => {
    const context = registry()
    const a = Metrics.HistogramSeries.of(Metrics.processingDurationWith, { stream: "S", consumer: "a" }, context)
    assert.strictEqual(
      Metrics.HistogramSeries.of(Metrics.processingDurationWith, { consumer: "a", stream: "S" }, context),
      a
    )
    assert.notStrictEqual(
      Metrics.HistogramSeries.of(Metrics.processingDurationWith, { stream: "S", consumer: "b" }, context),
      a
    )
    assert.notStrictEqual(
      Metrics.HistogramSeries.of(Metrics.messageAgeWith, { stream: "S", consumer: "a" }, context),
      a
    )
    assert.notStrictEqual(
      Metrics.HistogramSeries.of(Metrics.processingDurationWith, { stream: "S", consumer: "a" }, registry()),
      a
    )
    // registered at the first observation, as Effect's own series appear at their first update
    assert.strictEqual(Metric.snapshotUnsafe(context).length, 0)
    const tagged = Context.add(context, Metric.CurrentMetricAttributes, { service: "billing" })
    const b = Metrics.HistogramSeries.of(Metrics.processingDurationWith, { stream: "S", consumer: "a" }, tagged)
    assert.notStrictEqual(b, a)
    a.observe(1)
    b.observe(2)
    b.observe(3)
    const count = (attributes: Record<string, string>) =>
      Metric.withAttributes(Metrics.processingDuration, attributes).valueUnsafe(context).count
    assert.strictEqual(count({ stream: "S", consumer: "a" }), 1)
    assert.strictEqual(count({ stream: "S", consumer: "a", service: "billing" }), 2)
    assert.strictEqual(Metric.snapshotUnsafe(context).length, 2)
    // NaN counts where Effect's histogram counts it (above every boundary)
    const nan = Metrics.HistogramSeries.of(Metrics.processingDurationWith, { stream: "N", consumer: "n" }, context)
    nan.observe(Number.NaN)
    const reference = registry()
    Metrics.processingDurationWith({ stream: "N", consumer: "n" }).updateUnsafe(Number.NaN, reference)
    const read = Metric.withAttributes(Metrics.processingDuration, { stream: "N", consumer: "n" })
    assert.deepStrictEqual(read.valueUnsafe(context).buckets, read.valueUnsafe(reference).buckets)
  })
})
