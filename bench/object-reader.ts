/**
 * The child process of the Object Store read scenarios (one per side and
 * run, so each measures only its own memory): reads one object to the end,
 * as fast as it can or at 1 ms per chunk (a slow reader), sampling RSS;
 * reports the rate, the peak RSS growth over a baseline taken after setup,
 * and whether the bytes match the digest (raw: nats.js' `get` checks it and
 * errors its stream; effect: `ObjectStore.get` checks it).
 *
 *   forked by bench/scenarios/objectStore.ts: object-reader.ts <raw|effect> <url> <bucket> <name> <fast|slow>
 */
import { Objm } from "@nats-io/obj"
import { connect } from "@nats-io/transport-node"
import { Effect, Exit, Scope, Stream } from "effect"
import { NatsClient } from "../src/index.ts"
import * as ObjectStore from "../src/services/ObjectStore.ts"

export interface ReaderReport {
  readonly type: "done"
  readonly bytes: number
  readonly mbPerSec: number
  readonly peakGrowthMb: number
}

const [side = "raw", url = "", bucket = "", name = "", mode = "fast"] = process.argv.slice(2)
const MB = 1024 * 1024
let baseline = 0
let peak = 0
const sample = () => {
  peak = Math.max(peak, process.memoryUsage().rss)
}
const pause = () => mode === "slow" ? new Promise<void>((resolve) => setTimeout(resolve, 1)) : undefined

const settle = () => {
  ;(globalThis as { gc?: () => void }).gc?.()
  baseline = process.memoryUsage().rss
  peak = baseline
}

const raw = async (): Promise<number> => {
  const nc = await connect({ servers: url, noAsyncTraces: true })
  const os = await new Objm(nc).open(bucket)
  settle()
  const started = performance.now()
  const result = await os.get(name)
  if (result === null) throw new Error(`no object ${name}`)
  result.error.catch(() => undefined)
  let bytes = 0
  const reader = result.data.getReader()
  while (true) {
    const { done, value } = await reader.read()
    if (done) break
    bytes += value.length
    sample()
    await pause()
  }
  const seconds = (performance.now() - started) / 1000
  await nc.close()
  return report(bytes, seconds)
}

const effect = async (): Promise<number> => {
  const scope = Effect.runSync(Scope.make())
  const client = await Effect.runPromise(Scope.provide(scope)(NatsClient.make({ servers: url, logEvents: false })))
  const store = await Effect.runPromise(
    Effect.provideService(ObjectStore.make({ bucket }), NatsClient.NatsClient, client)
  )
  settle()
  const started = performance.now()
  let bytes = 0
  await Effect.runPromise(
    store.get(name).pipe(
      Stream.runForEach((chunk) =>
        Effect.promise(async () => {
          bytes += chunk.length
          sample()
          await pause()
        })
      )
    )
  )
  const seconds = (performance.now() - started) / 1000
  await Effect.runPromise(Scope.close(scope, Exit.void))
  return report(bytes, seconds)
}

const report = (bytes: number, seconds: number) => {
  const message: ReaderReport = {
    type: "done",
    bytes,
    mbPerSec: bytes / MB / seconds,
    peakGrowthMb: (peak - baseline) / MB
  }
  process.send?.(message)
  return bytes
}

await (side === "raw" ? raw() : effect())
process.exit(0)
