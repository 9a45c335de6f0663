import { assert, describe, layer } from "@effect/vitest"
import { Arbitrary, Effect, Schema } from "effect"
import { LocalNats, NatsClient, Subject } from "../../src/index.ts"

// Tokens from a small alphabet so that subjects and patterns collide often;
// `c*` and `d>` are literal tokens, not wildcards.
const subjectToken = Arbitrary.schema(Schema.Literals(["a", "b", "ab", "c*", "d>"]))
const patternToken = Arbitrary.schema(Schema.Literals(["a", "b", "ab", "*", "c*", "d>"]))
const subjects = Arbitrary.array(Arbitrary.array(subjectToken, { minLength: 1, maxLength: 4 }), {
  minLength: 1,
  maxLength: 12
})
const patterns = Arbitrary.array(
  Arbitrary.all([
    Arbitrary.array(patternToken, { minLength: 1, maxLength: 4 }),
    Arbitrary.schema(Schema.Boolean)
  ]).pipe(Arbitrary.map(([ts, full]) => full ? [...ts.slice(0, -1), ">"] : ts)),
  { minLength: 1, maxLength: 6 }
)

let run = 0

describe("Subject.matches", () => {
  layer(LocalNats.layer(), { excludeTestServices: true })("against the real server", (it) => {
    it.effect.prop(
      "agrees with nats-server's routing for generated subjects and patterns",
      [subjects, patterns],
      ([subjectTokens, patternTokens]) =>
        Effect.gen(function*() {
          const nc = (yield* NatsClient.NatsClient).connection
          // A fresh literal prefix per run keeps runs apart (wildcards come after it).
          const prefix = `route${run++}`
          const subjectList = subjectTokens.map((ts) => [prefix, ...ts].join("."))
          const patternList = patternTokens.map((ts) => [prefix, ...ts].join("."))
          const received = patternList.map(() => [] as Array<string>)
          const subs = patternList.map((pattern, i) =>
            nc.subscribe(pattern, {
              callback: (_err, msg) => {
                received[i]?.push(msg.subject)
              }
            })
          )
          yield* Effect.promise(() => nc.flush())
          for (const subject of subjectList) nc.publish(subject)
          // Every MSG the server routes for these PUBs precedes the PONG.
          yield* Effect.promise(() => nc.flush())
          for (const sub of subs) sub.unsubscribe()
          patternList.forEach((pattern, i) => {
            const expected = subjectList.filter((subject) => Subject.matches(pattern, subject))
            assert.deepStrictEqual(received[i], expected, `pattern ${pattern}`)
          })
        }),
      { timeout: 60_000, arbitrary: { runs: 150 } }
    )
  })
})
