/**
 * The article's `pricing.lookup` request/reply service as a typed RPC
 * endpoint, on the article's wire contract: `PriceRequest {product_id}` and
 * `PriceResponse {price, error?}`. An unknown product is a typed error that
 * reaches an effect-nats caller as such, and reaches the article's Go client
 * as `{ price: 0, error }` (its `PriceResponse`); replies of the article's Go
 * responder (`{ price }`, or an error in the body) decode the same way. A
 * missing service is `NoResponders`.
 *
 * Run: npm run example -- pricing
 */
import { Effect, Schema } from "effect"
import { LocalNats, Rpc } from "../src/index.ts"

/** The article's `PriceRequest`. */
export const PriceRequest = Schema.Struct({ product_id: Schema.String })

/** The article's `PriceResponse` when it carries a price. */
export const PriceResponse = Schema.Struct({ price: Schema.Int })

/** The article's `PriceResponse` when it carries an error: the typed error of the endpoint. */
export class PriceError extends Schema.Class<PriceError>("PriceError")({
  price: Schema.Int,
  error: Schema.NonEmptyString
}) {}

export const PriceLookup = Rpc.make(
  "pricing.lookup",
  { request: PriceRequest, response: PriceResponse, error: PriceError },
  // the article's services put errors in the body, without effect-nats' error header
  { errorInBody: true }
)

const catalogue: Record<string, number> = { "p-1": 4999, "p-2": 1999 }

/** The responder: a queue group so that several instances share the load. */
export const servePricing = Rpc.serve(
  PriceLookup,
  ({ product_id }) => {
    const price = catalogue[product_id]
    return price === undefined
      ? Effect.fail(new PriceError({ price: 0, error: `unknown product ${product_id}` }))
      : Effect.succeed({ price })
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
      Effect.catchIf(
        (e): e is PriceError => e instanceof PriceError,
        (e) => Effect.succeed(`typed error PriceError(${e.error})`)
      )
    )
    const rtt = { calls, p50_ms: p(0.5), p99_ms: p(0.99) }
    yield* Effect.log(
      `${calls} calls: p50 ${rtt.p50_ms.toFixed(3)} ms, p99 ${rtt.p99_ms.toFixed(3)} ms; unknown product -> ${unknown}`
    )
    return { ...rtt, unknown: String(unknown) }
  })

export const main = Effect.scoped(program()).pipe(Effect.provide(LocalNats.layerConfig()))
