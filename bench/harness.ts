/**
 * The benchmark harness: runs each scenario's raw nats.js side and
 * effect-nats side alternately (A B A B ...) after a warm-up, on one embedded
 * nats-server, and reports medians, ranges and ratios.
 */

export type Metric = "msgs/s" | "MB/s" | "p50_ms" | "p99_ms" | "rss_mb"

export type Side = "raw" | "effect" | "limit"

/** What one run of one side measured. */
export type Measurement = Partial<Record<Metric, number>>

export interface Target {
  readonly metric: Metric
  /** The ratio effect/raw must be at least this (msgs/s) or at most this (latency, memory). */
  readonly ratio?: number | undefined
  /** An absolute bound on the effect side (e.g. rss_mb <= 64). */
  readonly max?: number | undefined
  readonly text: string
}

export interface Context {
  readonly url: string
  readonly quick: boolean
  /** Every scenario's repetitions, in place of its own (`--reps`: a closer look at a few). */
  readonly reps?: number | undefined
}

export interface Scenario {
  readonly name: string
  readonly description: string
  readonly metrics: ReadonlyArray<Metric>
  readonly targets: ReadonlyArray<Target>
  readonly raw: (ctx: Context) => Promise<Measurement>
  readonly effect: (ctx: Context) => Promise<Measurement>
  /** The physical limit for this path (a bare socket), when there is one. */
  readonly limit?: ((ctx: Context) => Promise<Measurement>) | undefined
  readonly reps?: number | undefined
  /** Extra facts for the JSON result (e.g. which raw baseline was chosen), read after the runs. */
  readonly extra?: (() => Record<string, unknown>) | undefined
}

export interface Result {
  readonly scenario: string
  readonly metric: Metric
  readonly raw: number
  readonly effect: number
  readonly ratio: number
  readonly target: string
  readonly met: boolean
  readonly rawRange: readonly [number, number]
  readonly effectRange: readonly [number, number]
  readonly pairRatios: ReadonlyArray<number>
  readonly limit?: number | undefined
  readonly ofLimit?: number | undefined
  readonly extra?: Record<string, unknown> | undefined
}

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[mid] ?? NaN : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2
}

export const percentile = (sorted: ReadonlyArray<number>, q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN

const higherIsBetter = (metric: Metric) => metric === "msgs/s" || metric === "MB/s"

export const runScenario = async (scenario: Scenario, ctx: Context, log: (line: string) => void) => {
  const reps = ctx.quick ? 2 : ctx.reps ?? scenario.reps ?? 5
  log(`-- ${scenario.name}: ${scenario.description} (${reps} reps + warm-up)`)
  await scenario.raw(ctx)
  await scenario.effect(ctx)
  const raw: Array<Measurement> = []
  const eff: Array<Measurement> = []
  const limit: Array<Measurement> = []
  for (let i = 0; i < reps; i++) {
    // Alternate which side goes first, so drift (GC, the server's state) spreads evenly.
    const order = i % 2 === 0 ? ["raw", "effect"] as const : ["effect", "raw"] as const
    for (const side of order) {
      const m = await scenario[side](ctx)
      ;(side === "raw" ? raw : eff).push(m)
      log(`   ${side.padEnd(6)} ${scenario.metrics.map((k) => `${k}=${fmt(m[k])}`).join(" ")}`)
    }
    if (scenario.limit !== undefined && i < 2) {
      const m = await scenario.limit(ctx)
      limit.push(m)
      log(`   limit  ${scenario.metrics.map((k) => `${k}=${fmt(m[k])}`).join(" ")}`)
    }
  }
  return scenario.metrics.map((metric): Result => {
    const rs = raw.map((m) => m[metric] ?? NaN)
    const es = eff.map((m) => m[metric] ?? NaN)
    const r = median(rs)
    const e = median(es)
    const ratio = e / r
    const target = scenario.targets.find((t) => t.metric === metric)
    const met = target === undefined
      ? true
      : (target.ratio === undefined || (higherIsBetter(metric) ? ratio >= target.ratio : ratio <= target.ratio)) &&
        (target.max === undefined || e <= target.max)
    const ls = limit.map((m) => m[metric] ?? NaN).filter((x) => !Number.isNaN(x))
    const l = ls.length === 0 ? undefined : Math.max(...ls)
    return {
      scenario: scenario.name,
      metric,
      raw: r,
      effect: e,
      ratio,
      target: target?.text ?? "-",
      met,
      rawRange: [Math.min(...rs), Math.max(...rs)],
      effectRange: [Math.min(...es), Math.max(...es)],
      pairRatios: es.map((x, i) => x / (rs[i] ?? NaN)),
      ...(l === undefined ? {} : { limit: l, ofLimit: e / l }),
      ...(scenario.extra === undefined ? {} : { extra: scenario.extra() })
    }
  })
}

export const fmt = (x: number | undefined): string =>
  x === undefined || Number.isNaN(x)
    ? "-"
    : Math.abs(x) >= 1000
    ? Math.round(x).toLocaleString("en-US")
    : x >= 100
    ? x.toFixed(0)
    : x >= 1
    ? x.toFixed(2)
    : x.toFixed(3)

/** Waits until `cond()` holds, checking on every macrotask turn (for message counters). */
export const until = (cond: () => boolean, timeoutMs = 120_000): Promise<void> =>
  new Promise((resolve, reject) => {
    const started = Date.now()
    const check = () => {
      if (cond()) return resolve()
      if (Date.now() - started > timeoutMs) return reject(new Error("benchmark condition timed out"))
      setImmediate(check)
    }
    check()
  })
