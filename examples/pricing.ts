/**
 * The `pricing.lookup` request/reply service as a typed RPC endpoint: the
 * request and response are Schemas, an unknown product is a typed error that
 * reaches the caller as such, and a missing service is `NoResponders`.
 *
 * Run: npm run example -- pricing
 */
import { Effect, Schema } from "effect"
import { LocalNats, Rpc } from "../src/index.ts"

export class UnknownProduct extends Schema.TaggedError<UnknownProduct>()("UnknownProduct", {
  product_id: Schema.String
}) {}

export const PriceLookup = Rpc.make("pricing.lookup", {
  request: Schema.Struct({ product_id: Schema.String }),
  response: Schema.Struct({ product_id: Schema.String, price: Schema.Int }),
  error: UnknownProduct
})

const catalogue: Record<string, number> = { "p-1": 4999, "p-2": 1999 }

/** The responder: a queue group so that several instances share the load. */
export const servePricing = Rpc.serve(
  PriceLookup,
  ({ product_id }) => {
    const price = catalogue[product_id]
    return price === undefined
      ? Effect.fail(new UnknownProduct({ product_id }))
      : Effect.succeed({ product_id, price })
  },
  { queue: "pricing", concurrency: 8 }
)

/** Calls the service `calls` times and reports round-trip times and the typed error path. */
export const program = (calls = 200) =>
  Effect.gen(function*() {
    yield* servePricing
    const times: Array<number> = []
    for (let i = 0; i < calls; i++) {
      const started = performance.now()
      yield* Rpc.call(PriceLookup, { product_id: i % 2 === 0 ? "p-1" : "p-2" }, { timeout: "2 seconds" })
      times.push(performance.now() - started)
    }
    times.sort((a, b) => a - b)
    const p = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0
    const unknown = yield* Rpc.call(PriceLookup, { product_id: "nope" }).pipe(
      Effect.catchTag("UnknownProduct", (e) => Effect.succeed(`typed error UnknownProduct(${e.product_id})`))
    )
    const rtt = { calls, p50_ms: p(0.5), p99_ms: p(0.99) }
    yield* Effect.log(
      `${calls} calls: p50 ${rtt.p50_ms.toFixed(3)} ms, p99 ${rtt.p99_ms.toFixed(3)} ms; unknown product -> ${unknown}`
    )
    return { ...rtt, unknown: String(unknown) }
  })

export const main = Effect.scoped(program()).pipe(Effect.provide(LocalNats.layerConfig()))
