/**
 * The running totals a subscription's buffer learns a chunk's bytes from,
 * against a model (an array of the sizes): for any sequence of entries
 * pushed and shifted in runs, what a run weighs, what is held and how many
 * entries are held are the model's, across the ring's growth, wrap-around
 * and shrinking. The subscription tests (test/services/NatsClient.test.ts)
 * run it behind a real subscription (its byte bound and its metrics).
 */
import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Schema } from "effect"
import { SizeRing } from "../../src/internal/sizeRing.ts"

const Op = Schema.Union([
  Schema.Struct({
    op: Schema.Literal("push"),
    // mostly a few entries (the ring wraps), now and then thousands (it grows)
    count: Schema.Union([
      Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 8 })),
      Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 5_000 }))
    ]),
    size: Schema.Union([
      Schema.Literals([0, 1, 128]),
      Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 2 ** 31 }))
    ])
  }),
  Schema.Struct({
    op: Schema.Literal("shift"),
    n: Schema.Union([
      Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 8 })),
      Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 6_000 }))
    ])
  })
])
const ops = Arbitrary.array(Arbitrary.schema(Op), { maxLength: 60 })

describe("SizeRing against a model", () => {
  it.prop("a run of the oldest weighs what its entries do; what is held is the model's", [ops], ([ops]) => {
    const ring = new SizeRing()
    const model: Array<number> = []
    const sum = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0)
    for (const step of ops) {
      if (step.op === "push") {
        // sizes differ entry to entry, so that an off-by-one run weighs something else
        for (let i = 0; i < step.count; i++) {
          const size = step.size + i
          ring.push(size)
          model.push(size)
        }
      } else {
        assert.strictEqual(ring.shift(step.n), sum(model.splice(0, step.n)))
      }
      assert.strictEqual(ring.size, model.length)
      assert.strictEqual(ring.bytes, sum(model))
    }
    assert.strictEqual(ring.shift(model.length), sum(model))
    assert.strictEqual(ring.bytes, 0)
  }, { arbitrary: { runs: 200 } })

  it("counts right through a backlog that grows the ring, and after the ring shrinks back", () => {
    const ring = new SizeRing()
    for (let i = 0; i < 40_000; i++) ring.push(3)
    assert.strictEqual(ring.shift(39_999), 3 * 39_999)
    ring.push(5)
    assert.strictEqual(ring.shift(2), 8)
    assert.strictEqual(ring.size, 0)
    for (let i = 0; i < 1500; i++) ring.push(i)
    assert.strictEqual(ring.shift(1500), (1499 * 1500) / 2)
    assert.strictEqual(ring.bytes, 0)
  })
})
