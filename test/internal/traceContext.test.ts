import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Schema, Tracer } from "effect"
import * as TraceContext from "../../src/internal/traceContext.ts"

const Hex = (length: number) =>
  Schema.String.check(Schema.isPattern(new RegExp(`^[0-9a-f]{${length}}$`))).check(
    Schema.makeFilter((s) => !/^0+$/.test(s))
  )

/** The reading `parse` must agree with: the W3C grammar as a regular expression (lower-case hex, ids not all zero, not version ff). */
const model = (value: string) => {
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/.exec(value.trim())
  if (m === null || m[1] === "ff" || /^0+$/.test(m[2] ?? "") || /^0+$/.test(m[3] ?? "")) return undefined
  return [m[2], m[3], (Number.parseInt(m[4] ?? "", 16) & 1) === 1]
}

/** A valid traceparent with one edit: a character replaced, inserted or removed (or none), anywhere. */
const Edited = Schema.Tuple([
  Hex(32),
  Hex(16),
  Schema.Literals(["00", "01", "7f", "ff", "0a"]),
  Schema.Literals(["00", "01", "03", "ff"]),
  Schema.Literals(["", "-x", "-", "-\n", "-\r", " ", "\t-z"]),
  Schema.Literals(["none", "replace", "insert", "remove"]),
  Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 70 })),
  Schema.Literals(["0", "f", "g", "F", "-", " ", "\n", "\r", "\u2028", "\u2029", "\u00e9"])
])

describe("traceparent", () => {
  it.prop(
    "parse reads exactly what the W3C grammar accepts, on valid values edited anywhere",
    [Edited],
    ([[traceId, spanId, version, flags, tail, edit, at, char]]) => {
      const valid = `${version}-${traceId}-${spanId}-${flags}${tail}`
      const i = Math.min(at, valid.length)
      const value = edit === "replace"
        ? valid.slice(0, i) + char + valid.slice(i + 1)
        : edit === "insert"
        ? valid.slice(0, i) + char + valid.slice(i)
        : edit === "remove"
        ? valid.slice(0, i) + valid.slice(i + 1)
        : valid
      const parsed = TraceContext.parse(value)
      assert.deepStrictEqual(
        parsed === undefined ? undefined : [parsed.traceId, parsed.spanId, parsed.sampled],
        model(value),
        JSON.stringify(value)
      )
    }
  )

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
        `00-${id.toUpperCase()}-${span}-01`,
        // a later version's fields on one line only
        ...["\n", "\r", "\u2028", "\u2029"].map((eol) => `01-${id}-${span}-01-a${eol}b`)
      ]
    ) {
      assert.isUndefined(TraceContext.parse(value), value)
    }
    // a future version's extra fields are allowed; the flags' other bits are ignored
    assert.strictEqual(TraceContext.parse(`01-${id}-${span}-03-extra`)?.sampled, true)
    assert.strictEqual(TraceContext.parse(`00-${id}-${span}-00`)?.sampled, false)
  })
})

describe("process", () => {
  const tracer = Tracer.make({ span: (options) => new Tracer.NativeSpan(options) })

  it.effect("runs the handling as the span's child; a failure's trace names the span", () =>
    Effect.gen(function*() {
      const handling = Effect.flatMap(Effect.currentSpan, (span) => Effect.fail(new Error(`boom in ${span.name}`)))
      const exit = yield* Effect.exit(
        TraceContext.process("process orders", {}, { kind: "consumer", attributes: () => ({ n: 1 }) }, handling).pipe(
          Effect.withSpan("caller"),
          Effect.withTracer(tracer)
        )
      )
      assert.isTrue(Exit.isFailure(exit))
      if (Exit.isFailure(exit)) {
        const pretty = Cause.pretty(exit.cause)
        assert.include(pretty, "boom in process orders")
        assert.match(pretty, /at process orders\n\s+at caller/)
      }
    }))
})
