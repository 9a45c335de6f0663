import { connect } from "@nats-io/transport-node"
import { Effect, Stream } from "effect"
import { NatsClient, NatsServer } from "../src/index.ts"

const N = 1_000_000
const payload = new Uint8Array(128)
const main = Effect.gen(function*() {
  const server = yield* NatsServer.NatsServer
  const client = yield* NatsClient.make({ servers: server.url, logEvents: false })
  const nc = yield* Effect.promise(() => connect({ servers: server.url }))
  const msgs = Array.from({ length: N }, () => ({ subject: "bench.x", payload }))
  for (let rep = 0; rep < 3; rep++) {
    let t = performance.now()
    yield* Effect.promise(async () => {
      for (let i = 0; i < N; i++) nc.publish("bench.x", payload)
      await nc.flush()
    })
    const raw = N / ((performance.now() - t) / 1000)
    t = performance.now()
    for (let i = 0; i < N; i++) yield* client.publish("bench.x", payload)
    yield* client.flush
    const eff = N / ((performance.now() - t) / 1000)
    t = performance.now()
    yield* client.publishAll(msgs)
    yield* client.flush
    const all = N / ((performance.now() - t) / 1000)
    t = performance.now()
    yield* client.publishAll(Stream.fromIterable(msgs))
    yield* client.flush
    const st = N / ((performance.now() - t) / 1000)
    console.log(
      `raw ${raw.toFixed(0)}  per-msg ${(eff / raw).toFixed(2)}  all(iter) ${(all / raw).toFixed(2)}  all(stream) ${
        (st / raw).toFixed(2)
      }`
    )
  }
  yield* Effect.promise(() => nc.close())
}).pipe(Effect.scoped, Effect.provide(NatsServer.layer({ jetstream: false })))
Effect.runPromise(main)
