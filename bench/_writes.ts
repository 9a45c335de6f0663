import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { JsMsg } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect, Exit, Scope, Stream } from "effect"
import { Consumer, NatsClient, NatsServer } from "../src/index.ts"
import * as P from "../node_modules/@nats-io/nats-core/lib/protocol.js"
let flushes = 0
const proto = (P as any).ProtocolHandler.prototype
const orig = proto.flushPending
proto.flushPending = function() { if (this.outbound.length() > 0) flushes++; return orig.call(this) }
const count = 50_000
const scope = Effect.runSync(Scope.make())
const server = await Effect.runPromise(Scope.provide(scope)(NatsServer.make({})))
const raw = await connect({ servers: server.url })
const client = await Effect.runPromise(Scope.provide(scope)(NatsClient.make({ servers: server.url, logEvents: false })))
const jsm = await jetstreamManager(raw); const js = jetstream(raw)
await jsm.streams.add({ name: "CV", subjects: ["cv"], storage: "memory" })
for (let i = 0; i < count; i += 500) await Promise.all(Array.from({ length: 500 }, () => js.publish("cv", new Uint8Array(128))))
for (const side of ["raw", "effect", "raw", "effect"]) {
  const name = `c${Math.random().toString(36).slice(2)}`
  await jsm.consumers.add("CV", { durable_name: name, ack_policy: "explicit" })
  flushes = 0
  const t = performance.now()
  if (side === "raw") {
    const c = await js.consumers.get("CV", name); let n = 0; let res = () => {}
    const done = new Promise<void>((r) => res = r)
    const m = await c.consume({ callback: (m: JsMsg) => { m.ack(); if (++n === count) res() } })
    await done; await raw.flush(); await m.close()
  } else {
    await Effect.runPromise(Effect.scoped(Consumer.make({ stream: "CV", durable: name }).pipe(
      Effect.flatMap((c) => c.consume().pipe(Stream.take(count), Stream.runForEach((e) => e.ack))),
      Effect.andThen(client.flush),
      Effect.provideService(NatsClient.NatsClient, client))))
  }
  console.log(side, Math.round(count / ((performance.now() - t) / 1000)), "msgs/s, flushes", flushes)
}
await raw.close(); await Effect.runPromise(Scope.close(scope, Exit.void))
