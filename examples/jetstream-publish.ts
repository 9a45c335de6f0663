/**
 * The article's advice "use PublishAsync in hot paths", measured: the same
 * orders published one by one (each publish waits for its ack before the
 * next is sent) and with `publishAll` (up to `window` acks outstanding,
 * acks checked in order). Every ack is checked: the stream stored exactly N
 * messages per run, with consecutive sequences and no duplicates; sending
 * the pipelined batch again with the same `msgId`s stores nothing.
 *
 * The orders go to `orders.imported` (a bulk import): ORDERS captures them,
 * the push consumer's `orders.created` filter does not.
 *
 * Run: npm run example -- jetstream-publish
 */
import { Duration, Effect, Stream } from "effect"
import { JetStream, JetStreamManager, TypedSubject } from "../src/index.ts"
import { ensureOrdersStream, layer } from "./jetstream-setup.ts"
import { OrderEvent } from "./queue-worker.ts"

export const OrderImported = TypedSubject.make("orders.imported", OrderEvent)

/** What one way of publishing did. */
export interface Run {
  readonly published: number
  /** How many more messages the stream holds afterwards. */
  readonly stored: number
  readonly duplicates: number
  /** The acks' sequences follow each other without a gap. */
  readonly consecutive: boolean
  readonly millis: number
  readonly perSecond: number
}

/** `count` orders, encoded once, each with a deduplication id unique to this run. */
const orders = (count: number, tag: string) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) =>
      Effect.fromResult(
        JetStream.typedMessage(OrderImported, new OrderEvent({ order_id: `${tag}-${i}`, amount: 100 + i }), {
          msgId: `${tag}-${i}`
        })
      )
  )

const summarize = (acks: ReadonlyArray<JetStream.PubAck>, stored: number, elapsed: Duration.Duration): Run => {
  const millis = Duration.toMillis(elapsed)
  return {
    published: acks.length,
    stored,
    duplicates: acks.filter((ack) => ack.duplicate).length,
    consecutive: acks.every((ack, i) => i === 0 || ack.seq === (acks[i - 1]?.seq ?? 0) + 1),
    millis,
    perSecond: acks.length / (millis / 1000)
  }
}

/** Publishes `count` orders one by one, then pipelined, then the pipelined ones again (all duplicates). */
export const program = (count = 5000, window = JetStream.defaultWindow) =>
  Effect.gen(function*() {
    yield* ensureOrdersStream
    const js = yield* JetStream.JetStream
    const jsm = yield* JetStreamManager.JetStreamManager
    const messages = (yield* jsm.streamInfo("ORDERS")).state.messages
    const stored = Effect.map(jsm.streamInfo("ORDERS"), (info) => info.state.messages)
    const run = Date.now().toString(36)

    const sequentialOrders = yield* orders(count, `${run}-seq`)
    const [t1, sequentialAcks] = yield* Effect.timed(
      Effect.forEach(sequentialOrders, (m) => js.publish(m.subject, m.payload, { msgId: m.msgId }))
    )
    const afterSequential = yield* stored
    const sequential = summarize(sequentialAcks, afterSequential - messages, t1)
    yield* Effect.log(
      `one by one: ${count} orders in ${sequential.millis.toFixed(0)} ms (${sequential.perSecond.toFixed(0)} msg/s)`
    )

    const pipelinedOrders = yield* orders(count, `${run}-all`)
    const [t2, pipelinedAcks] = yield* Effect.timed(Stream.runCollect(js.publishAll(pipelinedOrders, { window })))
    const afterPipelined = yield* stored
    const pipelined = summarize(pipelinedAcks, afterPipelined - afterSequential, t2)
    const speedUp = pipelined.perSecond / sequential.perSecond
    yield* Effect.log(
      `publishAll (window ${window}): ${count} orders in ${pipelined.millis.toFixed(0)} ms (${
        pipelined.perSecond.toFixed(0)
      } msg/s), ${speedUp.toFixed(1)}x faster`
    )

    // The same batch again: the stream's duplicate window recognises every msgId.
    const [t3, againAcks] = yield* Effect.timed(Stream.runCollect(js.publishAll(pipelinedOrders, { window })))
    const again = summarize(againAcks, (yield* stored) - afterPipelined, t3)
    yield* Effect.log(
      `every ack checked: stored ${sequential.stored} + ${pipelined.stored} (${
        sequential.duplicates + pipelined.duplicates
      } duplicates, sequences ${
        sequential.consecutive && pipelined.consecutive ? "consecutive" : "with gaps"
      }); the pipelined batch again with the same msgIds: ${again.duplicates} duplicates, ${again.stored} stored`
    )
    return { count, window, sequential, pipelined, again, speedUp }
  })

export const main = program().pipe(Effect.provide(layer))
