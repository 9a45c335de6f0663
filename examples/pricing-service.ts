/**
 * The article's `pricing.lookup` as a NATS service: two instances of
 * `pricing` 1.0.0 share the endpoint in a queue group, answer discovery
 * (`$SRV.PING|INFO|STATS`, what `nats micro ls` shows), and keep exact
 * stats. The program calls the service, then prints what discovery sees:
 * each instance, its endpoint, and how many requests and errors it served.
 *
 * Run: npm run example -- pricing-service
 */
import { Effect, Stream } from "effect"
import { LocalNats, Rpc, Service, ServiceClient } from "../src/index.ts"
import { PriceError, PriceLookup } from "./pricing.ts"

const catalogue: Record<string, number> = { "p-1": 4999, "p-2": 1999 }

const lookup = ({ product_id }: { readonly product_id: string }) => {
  const price = catalogue[product_id]
  return price === undefined
    ? Effect.fail(new PriceError({ price: 0, error: `unknown product ${product_id}` }))
    : Effect.succeed({ price })
}

/** One instance of the pricing service. */
export const pricingInstance = Service.make({
  name: "pricing",
  version: "1.0.0",
  description: "prices of the catalogue, in cents",
  metadata: { owner: "shop" },
  endpoints: [Service.rpc("lookup", PriceLookup, lookup, { concurrency: 8 })]
})

export const program = Effect.gen(function*() {
  const instances = [yield* pricingInstance, yield* pricingInstance]
  for (let i = 0; i < 20; i++) yield* Rpc.call(PriceLookup, { product_id: i % 2 === 0 ? "p-1" : "p-2" })
  yield* Effect.ignore(Rpc.call(PriceLookup, { product_id: "nope" }))

  const found = Array.from(yield* Stream.runCollect(ServiceClient.info({ name: "pricing", stall: "250 millis" })))
  const stats = Array.from(yield* Stream.runCollect(ServiceClient.stats({ name: "pricing", stall: "250 millis" })))
  for (const info of found) {
    const s = stats.find((x) => x.id === info.id)?.endpoints[0]
    yield* Effect.log(
      `${info.name} ${info.version} ${info.id}: ${
        info.endpoints.map((e) => `${e.name} on ${e.subject} (queue ${e.queueGroup})`).join(", ")
      }; ${s?.numRequests ?? 0} requests, ${s?.numErrors ?? 0} errors${s?.lastError ? ` (last: ${s.lastError})` : ""}`
    )
  }
  const served = stats.reduce((n, s) => n + (s.endpoints[0]?.numRequests ?? 0), 0)
  const errors = stats.reduce((n, s) => n + (s.endpoints[0]?.numErrors ?? 0), 0)
  return { instances: instances.map((i) => i.id), discovered: found.map((i) => i.id), served, errors }
})

export const main = Effect.scoped(program).pipe(Effect.provide(LocalNats.layerConfig()))
