import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import * as TraceContext from "../../src/internal/traceContext.ts"

const Hex = (length: number) =>
  Schema.String.check(Schema.isPattern(new RegExp(`^[0-9a-f]{${length}}$`))).check(
    Schema.makeFilter((s) => !/^0+$/.test(s))
  )

describe("traceparent", () => {
  it.prop("format and parse agree on every span", [Hex(32), Hex(16), Schema.Boolean], ([traceId, spanId, sampled]) => {
    const parsed = TraceContext.parse(TraceContext.format({ traceId, spanId, sampled }))
    assert.deepStrictEqual([parsed?.traceId, parsed?.spanId, parsed?.sampled], [traceId, spanId, sampled])
  })

  it("malformed values are no span: never an error", () => {
    const id = "4bf92f3577b34da6a3ce929d0e0e4736"
    const span = "00f067aa0ba902b7"
    for (
      const value of [
        "",
        "garbage",
        `00-${id}-${span}`,
        `00-${"0".repeat(32)}-${span}-01`,
        `00-${id}-${"0".repeat(16)}-01`,
        `ff-${id}-${span}-01`,
        `00-${id.toUpperCase()}-${span}-01`
      ]
    ) {
      assert.isUndefined(TraceContext.parse(value), value)
    }
    // a future version's extra fields are allowed; the flags' other bits are ignored
    assert.strictEqual(TraceContext.parse(`01-${id}-${span}-03-extra`)?.sampled, true)
    assert.strictEqual(TraceContext.parse(`00-${id}-${span}-00`)?.sampled, false)
  })
})
