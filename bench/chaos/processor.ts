/**
 * A Processor wired to a tally: every handler start is a delivery (by the
 * id its payload carries), every `acked` outcome a completion; handlers for
 * the same stream sequence running at once are counted; outcomes are counted
 * by kind.
 */
import type { Duration, Scope } from "effect"
import { Effect } from "effect"
import type { Consumer, NatsError } from "../../src/index.ts"
import { Codec, Processor } from "../../src/index.ts"
import type { Services, Tally } from "./common.ts"

export interface Watch {
  /** Handlers running now, by stream sequence. */
  readonly running: Map<number, number>
  /** A delivery handed to a handler while another handler of the same sequence was still running. */
  concurrentDuplicates: number
  /** Deliveries with a delivery count above 1 (redelivered by the server). */
  redeliveries: number
  /** Outcomes by kind, per processor tag. */
  readonly outcomes: Record<string, number>
  readonly idBySeq: Map<number, number>
}

export const makeWatch = (): Watch => ({
  running: new Map(),
  concurrentDuplicates: 0,
  redeliveries: 0,
  outcomes: {},
  idBySeq: new Map()
})

export interface RunOptions {
  readonly tag: string
  readonly concurrency: number
  /** How long the handler of a message works. */
  readonly work: (id: number) => Duration.Input
  /** Whether an `acked` outcome counts as a success for the resume time. Default true. */
  readonly success?: boolean
  readonly gracePeriod?: Duration.Input
}

/** Starts a Processor on `consumer` in the current scope. */
export const startProcessor = (
  svc: Services,
  consumer: Consumer.ConsumerShape,
  tally: Tally,
  watch: Watch,
  options: RunOptions
): Effect.Effect<void, NatsError.NatsError, Scope.Scope> =>
  Processor.make({
    consumer,
    codec: Codec.string,
    concurrency: options.concurrency,
    ...(options.gracePeriod === undefined ? {} : { gracePeriod: options.gracePeriod }),
    handler: (value, envelope) =>
      Effect.suspend(() => {
        const id = Number(value)
        const seq = envelope.streamSequence
        watch.idBySeq.set(seq, id)
        tally.delivered(id)
        if (envelope.deliveryCount > 1) watch.redeliveries++
        const running = watch.running.get(seq) ?? 0
        if (running > 0) watch.concurrentDuplicates++
        watch.running.set(seq, running + 1)
        return Effect.sleep(options.work(id)).pipe(
          Effect.ensuring(Effect.sync(() => {
            const left = (watch.running.get(seq) ?? 1) - 1
            if (left === 0) watch.running.delete(seq)
            else watch.running.set(seq, left)
          }))
        )
      }),
    onOutcome: (outcome) => {
      const key = `${options.tag}.${outcome.outcome}`
      watch.outcomes[key] = (watch.outcomes[key] ?? 0) + 1
      if (outcome.outcome !== "acked") return
      const id = watch.idBySeq.get(outcome.streamSequence)
      if (id !== undefined) tally.done(id)
      if (options.success !== false) tally.success()
    }
  }).pipe(Effect.provide(svc.context), Effect.asVoid)
