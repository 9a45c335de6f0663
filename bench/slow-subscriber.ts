/**
 * The child process of `slow-subscriber-memory` (one per side and run, so
 * each measures only its own memory): subscribes, reports its baseline RSS
 * (after setup and a GC) to the parent, which then publishes `count`
 * messages as fast as it can; drains them at 20 µs of busy work per message,
 * sampling RSS, until the last message (its index is in the first 4 bytes of
 * the payload) arrives; reports the peak RSS growth.
 *
 *   forked by bench/scenarios/memory.ts: slow-subscriber.ts <raw|effect> <url> <subject> <count> <bufferSize>
 */
import { connect } from "@nats-io/transport-node"
import { Effect, Exit, Scope, Stream } from "effect"
import { NatsClient } from "../src/index.ts"

export interface ChildReport {
  readonly type: "done"
  readonly peakGrowthMb: number
  readonly received: number
  readonly seconds: number
  readonly complete: boolean
  /** Peaks over the baseline of the parts of RSS: V8 heap and array buffers (the payloads, socket reads). */
  readonly peakHeapMb: number
  readonly peakArrayBuffersMb: number
}

const [side = "raw", url = "", subject = "", countText = "0", bufferText = "10000"] = process.argv.slice(2)
const count = Number(countText)
const bufferSize = Number(bufferText)
const send = (message: object) => process.send?.(message)

let baseline = 0
let peak = 0
let baseHeap = 0
let peakHeap = 0
let baseBuffers = 0
let peakBuffers = 0
let received = 0
let started = 0

const busy = (micros: number) => {
  const end = performance.now() + micros / 1000
  while (performance.now() < end) {
    // the consumer's work
  }
}

/** One message: 20 µs of work, an RSS sample every 256 messages; true for the last message. */
const handle = (data: Uint8Array): boolean => {
  received++
  busy(20)
  if ((received & 255) === 0) sample()
  return new DataView(data.buffer, data.byteOffset, 4).getUint32(0) === count - 1
}

const sample = () => {
  const m = process.memoryUsage()
  if (m.rss > peak) peak = m.rss
  if (m.heapUsed > peakHeap) peakHeap = m.heapUsed
  if (m.arrayBuffers > peakBuffers) peakBuffers = m.arrayBuffers
}

const ready = () => {
  globalThis.gc?.()
  const m = process.memoryUsage()
  baseline = m.rss
  peak = baseline
  baseHeap = peakHeap = m.heapUsed
  baseBuffers = peakBuffers = m.arrayBuffers
  started = performance.now()
  send({ type: "ready", baselineMb: baseline / 2 ** 20 })
}

const report = (complete: boolean) => {
  sample()
  const done: ChildReport = {
    type: "done",
    peakGrowthMb: (peak - baseline) / 2 ** 20,
    received,
    seconds: (performance.now() - started) / 1000,
    complete,
    peakHeapMb: (peakHeap - baseHeap) / 2 ** 20,
    peakArrayBuffersMb: (peakBuffers - baseBuffers) / 2 ** 20
  }
  send(done)
}

// a run that never sees its last message (a dropped connection...) still reports
const timer = setTimeout(() => {
  report(false)
  process.exit(0)
}, 110_000)

if (side === "raw") {
  const nc = await connect({ servers: url, name: "bench-slow-raw" })
  const sub = nc.subscribe(subject)
  await nc.flush()
  ready()
  for await (const m of sub) {
    if (handle(m.data)) break
  }
  report(true)
  await nc.close()
} else {
  const scope = Effect.runSync(Scope.make())
  const client = await Effect.runPromise(
    Scope.provide(scope)(NatsClient.make({ servers: url, name: "bench-slow-effect", logEvents: false }))
  )
  await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const messages = yield* client.subscribeScoped(subject, { bufferSize, overflow: "dropOldest" })
    ready()
    yield* messages.pipe(
      Stream.takeUntil((m) => handle(m.data)),
      Stream.runDrain
    )
  })))
  report(true)
  await Effect.runPromise(Scope.close(scope, Exit.void))
}
clearTimeout(timer)
process.exit(0)
