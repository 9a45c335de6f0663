/**
 * A configuration service on a Key-Value bucket: the application reads its
 * setting from a `Ref` that a watch keeps current, so a change made anywhere
 * (another instance, an operator's `nats kv put`) is live at once, also
 * across a restart of the server (the watch reads on after the last
 * revision it delivered).
 *
 * Run: npm run example -- config-service (on an embedded server: it restarts it)
 */
import { Effect, Ref, Schedule, Schema, Stream } from "effect"
import { KeyValue, LocalNats, NatsServer } from "../src/index.ts"

export const RateLimit = Schema.Struct({ perMinute: Schema.Int.check(Schema.isGreaterThan(0)) })

/** The live setting, and what the watch saw. */
export const liveSetting = (settings: KeyValue.KeyValueShape<typeof RateLimit.Type>, key: string) =>
  Effect.gen(function*() {
    const current = yield* Ref.make<number | undefined>(undefined)
    const changes: Array<number> = []
    yield* settings.watch({ key }).pipe(
      Stream.runForEach((entry) =>
        entry.value === undefined
          ? Ref.set(current, undefined)
          : Effect.andThen(Ref.set(current, entry.value.perMinute), () => {
            changes.push(entry.value?.perMinute ?? 0)
            return Effect.log(`reloaded ${key}: ${entry.value?.perMinute} per minute (revision ${entry.revision})`)
          })
      ),
      Effect.forkScoped
    )
    return { current, changes }
  })

/** Writes the setting three times, with a server restart between the second and the third. */
export const program = Effect.gen(function*() {
  const settings = yield* KeyValue.make({ bucket: "config", codec: RateLimit, config: { history: 5 } })
  yield* settings.put("orders.rate", { perMinute: 100 })
  const live = yield* liveSetting(settings, "orders.rate")
  /** Until the live value is `value`. */
  const seen = (value: number) =>
    Ref.get(live.current).pipe(
      Effect.repeat({ until: (now) => now === value, schedule: Schedule.spaced("20 millis") }),
      Effect.timeout("15 seconds")
    )
  yield* seen(100)
  yield* settings.put("orders.rate", { perMinute: 200 })
  yield* seen(200)
  yield* Effect.log("restarting the server")
  yield* (yield* NatsServer.NatsServer).restart()
  yield* settings.put("orders.rate", { perMinute: 300 }).pipe(Effect.retry({ times: 50, schedule: undefined }))
  yield* seen(300)
  return { changes: live.changes, final: yield* Ref.get(live.current) }
})

/** On an embedded server (it restarts it). */
export const main = Effect.scoped(program).pipe(Effect.provide(LocalNats.layer()))
