/**
 * Payload codecs: how message bodies (`Uint8Array`) become typed values and
 * back.
 *
 * A `Codec<A>` encodes and decodes synchronously and returns a `Result`, not
 * an `Effect`: decoding runs once per received message, so it must be cheap
 * and must not allocate an Effect per message. Failures are values
 * (`DecodeError`, `EncodeError`), never throws.
 *
 * Built-in codecs: `json(schema)` (JSON text validated by a Schema), `string`
 * (UTF-8 text), `bytes` (identity), `fromStringSchema(schema)` (UTF-8 text
 * decoded by a string Schema) and `make` for custom codecs.
 *
 * @since 0.1.0
 */
import { Function, Result, Schema, SchemaAST } from "effect"
import { SchemaJITCompiler } from "effect/schema"

/**
 * A message payload could not be decoded (invalid UTF-8, invalid JSON, or a
 * value of the wrong shape). `cause` holds the underlying `SchemaError`,
 * `SyntaxError` or `TypeError`; `subject` is filled in by the client (see
 * `withSubject`). Not retryable: the same bytes fail again.
 *
 * @category errors
 * @since 0.1.0
 */
export class DecodeError extends Schema.TaggedError<DecodeError>("effect-nats/DecodeError")("DecodeError", {
  message: Schema.String,
  contentType: Schema.optional(Schema.String),
  subject: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Defect())
}) {
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * A value could not be encoded into a payload (it does not satisfy the
 * Schema, or it is not serialisable). `cause` holds the underlying error;
 * `subject` is filled in by the client (see `withSubject`). Not retryable.
 *
 * @category errors
 * @since 0.1.0
 */
export class EncodeError extends Schema.TaggedError<EncodeError>("effect-nats/EncodeError")("EncodeError", {
  message: Schema.String,
  contentType: Schema.optional(Schema.String),
  subject: Schema.optional(Schema.String),
  cause: Schema.optional(Schema.Defect())
}) {
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * Returns a copy of a `DecodeError` or `EncodeError` carrying the subject of
 * the message it concerns. Only called on failures, so it costs nothing on
 * the success path.
 *
 * @category errors
 * @since 0.1.0
 */
export const withSubject: {
  (subject: string): <E extends DecodeError | EncodeError>(self: E) => E
  <E extends DecodeError | EncodeError>(self: E, subject: string): E
} = Function.dual(
  2,
  <E extends DecodeError | EncodeError>(self: E, subject: string): E => {
    const fields = { message: self.message, contentType: self.contentType, subject, cause: self.cause }
    return (self._tag === "DecodeError" ? new DecodeError(fields) : new EncodeError(fields)) as E
  }
)

/**
 * Encodes values of type `A` into message payloads and decodes payloads back,
 * synchronously.
 *
 * @category models
 * @since 0.1.0
 */
export interface Codec<A> {
  /** The MIME type of the payloads, e.g. `application/json`. */
  readonly contentType: string
  /** Encodes a value into a payload. */
  readonly encode: (value: A) => Result.Result<Uint8Array, EncodeError>
  /** Decodes a payload into a value. */
  readonly decode: (bytes: Uint8Array) => Result.Result<A, DecodeError>
}

/**
 * Extracts the value type of a `Codec`.
 *
 * @category models
 * @since 0.1.0
 */
export type Type<C> = C extends Codec<infer A> ? A : never

/**
 * Creates a custom codec. `encode` and `decode` should return
 * `Result.fail(new EncodeError(...))` / `Result.fail(new DecodeError(...))`
 * rather than throw; one that throws anyway (a stack overflow, say) fails
 * with `DecodeError` / `EncodeError` carrying what was thrown as `cause`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <A>(options: {
  readonly contentType: string
  readonly encode: (value: A) => Result.Result<Uint8Array, EncodeError>
  readonly decode: (bytes: Uint8Array) => Result.Result<A, DecodeError>
}): Codec<A> => {
  if (guarded.has(options)) return options as Codec<A>
  const codec: Codec<A> = {
    contentType: options.contentType,
    encode: guardEncode(options.encode, options.contentType),
    decode: guardDecode(options.decode, options.contentType)
  }
  guarded.add(codec)
  return codec
}

/** Codecs whose functions never throw (made by `make`, `json`, `fromStringSchema`, or built in). */
const guarded = new WeakSet<object>()

const textEncoder = new TextEncoder()
// `fatal`: invalid UTF-8 is a decode failure, not silently replaced.
// `ignoreBOM`: a leading U+FEFF is kept, so `string` round-trips every string.
const textDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

const decodeMismatch = (issue: Schema.SchemaError, contentType: string): DecodeError =>
  new DecodeError({ message: `Payload does not match the schema: ${issue.message}`, contentType, cause: issue })

const encodeMismatch = (issue: Schema.SchemaError, contentType: string): EncodeError =>
  new EncodeError({ message: `Value does not match the schema: ${issue.message}`, contentType, cause: issue })

const errorMessage = (u: unknown): string => u instanceof Error ? u.message : String(u)

/**
 * A decoder that never throws: what a decoder throws (a recursive Schema
 * overflowing the stack on a deeply nested payload, a custom codec's bug)
 * is a `DecodeError` of that payload.
 */
const guardDecode = <A>(
  decode: (bytes: Uint8Array) => Result.Result<A, DecodeError>,
  contentType: string
) =>
(bytes: Uint8Array): Result.Result<A, DecodeError> => {
  try {
    return decode(bytes)
  } catch (cause) {
    const message = overflowed(cause)
      ? "Payload is nested too deeply to decode (the Schema's recursion overflowed the stack)"
      : `Payload could not be decoded: ${errorMessage(cause)}`
    return Result.fail(new DecodeError({ message, contentType, cause }))
  }
}

/** Whether a throw is a stack overflow (Schema reports one as a defect whose cause is the `RangeError`). */
const overflowed = (u: unknown): boolean =>
  u instanceof RangeError ||
  (u instanceof Error && /Maximum call stack size exceeded/.test(String((u as { readonly cause?: unknown }).cause)))

const markGuarded = <A>(codec: Codec<A>): Codec<A> => {
  guarded.add(codec)
  return codec
}

/** An encoder that never throws (see `guardDecode`). */
const guardEncode = <A>(
  encode: (value: A) => Result.Result<Uint8Array, EncodeError>,
  contentType: string
) =>
(value: A): Result.Result<Uint8Array, EncodeError> => {
  try {
    return encode(value)
  } catch (cause) {
    return Result.fail(
      new EncodeError({ message: `Value could not be encoded: ${errorMessage(cause)}`, contentType, cause })
    )
  }
}

const isWellFormed: (s: string) => boolean = (() => {
  const native = (String.prototype as { isWellFormed?: (this: string) => boolean }).isWellFormed
  if (native !== undefined) return (s: string) => native.call(s)
  return (s: string) => {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0xd800 && c <= 0xdfff) {
        if (c >= 0xdc00) return false
        const next = s.charCodeAt(i + 1)
        if (!(next >= 0xdc00 && next <= 0xdfff)) return false
        i++
      }
    }
    return true
  }
})()

const utf8Decode = (
  bytes: Uint8Array,
  contentType: string
): Result.Result<string, DecodeError> => {
  try {
    return Result.succeed(textDecoder.decode(bytes))
  } catch (cause) {
    return Result.fail(
      new DecodeError({ message: `Payload is not valid UTF-8: ${errorMessage(cause)}`, contentType, cause })
    )
  }
}

const utf8Encode = (value: string, contentType: string): Result.Result<Uint8Array, EncodeError> =>
  isWellFormed(value)
    ? Result.succeed(textEncoder.encode(value))
    : Result.fail(
      new EncodeError({
        message: "String contains an unpaired UTF-16 surrogate and cannot be UTF-8 encoded",
        contentType
      })
    )

/**
 * UTF-8 text (`text/plain; charset=utf-8`). Decoding fails on invalid UTF-8;
 * encoding fails on strings with unpaired surrogates (they would otherwise be
 * silently replaced by U+FFFD). A leading BOM is preserved.
 *
 * @category codecs
 * @since 0.1.0
 */
export const string: Codec<string> = {
  contentType: "text/plain; charset=utf-8",
  encode: (value) => utf8Encode(value, "text/plain; charset=utf-8"),
  decode: (bytes) => utf8Decode(bytes, "text/plain; charset=utf-8")
}
guarded.add(string)

/**
 * Raw bytes (`application/octet-stream`): the identity codec. No copy is
 * made, the very same `Uint8Array` is returned.
 *
 * @category codecs
 * @since 0.1.0
 */
export const bytes: Codec<Uint8Array> = {
  contentType: "application/octet-stream",
  encode: Result.succeed,
  decode: Result.succeed
}
guarded.add(bytes)

/**
 * Compiles a Schema's decoder and encoder to JavaScript with Effect's
 * `SchemaJITCompiler` (lazily, at their first use): what `json` and
 * `fromStringSchema` do unless told `{ compile: false }`. The compiled code
 * gives the same values and, for an invalid input, falls back to Effect's
 * interpreter for the same detailed issue; where `new Function` is not
 * allowed (a strict Content Security Policy), or a Schema cannot be
 * compiled, the interpreter is used throughout.
 *
 * It applies to the Schema itself (Effect keeps one compiled form per
 * Schema), once: every decoder made of it afterwards is compiled too (a
 * codec made with `{ compile: false }` of a Schema compiled already
 * included), and those made before keep what they had.
 * `SchemaJITCompiler` is marked unstable in Effect 4.1.
 *
 * @category codecs
 * @since 0.1.0
 */
export const compile = (schema: Schema.Top): void => {
  // once per Schema: enabling again would make Effect generate its code again at the next decode
  if (compiled.has(schema.ast)) return
  compiled.add(schema.ast)
  try {
    SchemaJITCompiler.enable(schema.ast)
    SchemaJITCompiler.enable(SchemaAST.flip(schema.ast))
  } catch {
    // not compiled: the interpreter decodes it
  }
}

const compiled = new WeakSet<SchemaAST.AST>()

/**
 * JSON text validated by a Schema (`application/json`).
 *
 * Decoding: UTF-8 → `JSON.parse` → Schema decode of the parsed value.
 * Encoding: Schema encode → `JSON.stringify` → UTF-8. The Schema decoder and
 * encoder are made once per codec; the Schema must not need services.
 *
 * The Schema is compiled to JavaScript by Effect's `SchemaJITCompiler` (see
 * `compile`) unless `{ compile: false }` is given: a decode then costs about
 * a third less, with the same results and the same errors.
 *
 * Failures (invalid UTF-8, invalid JSON, wrong shape, unserialisable value)
 * are returned as `DecodeError` / `EncodeError` whose message includes the
 * Schema issue summary and whose `cause` is the `SchemaError` or
 * `SyntaxError`. Nothing throws: a payload nested so deeply that a recursive
 * Schema overflows the stack is a `DecodeError` like any other.
 *
 * @example
 * ```ts
 * const Orders = Codec.json(Schema.Struct({ id: Schema.String }))
 * Orders.decode(new TextEncoder().encode('{"id":"o-1"}')) // Result.succeed({ id: "o-1" })
 * ```
 *
 * @category codecs
 * @since 0.1.0
 */
export const json = <A, I>(
  schema: Schema.Codec<A, I, never, never>,
  options?: { readonly compile?: boolean | undefined }
): Codec<A> => {
  const contentType = "application/json"
  if (options?.compile !== false) compile(schema)
  const decodeValue = Schema.decodeUnknownResult(schema)
  const encodeValue = Schema.encodeResult(schema)
  return markGuarded({
    contentType,
    decode: guardDecode((bytes) => {
      let parsed: unknown
      try {
        parsed = JSON.parse(textDecoder.decode(bytes))
      } catch (cause) {
        return Result.fail(
          new DecodeError({ message: `Payload is not valid JSON: ${errorMessage(cause)}`, contentType, cause })
        )
      }
      const result = decodeValue(parsed)
      // a success has no error: it is returned as it is, not wrapped again
      return Result.isSuccess(result)
        ? result as Result.Result<A, never>
        : Result.fail(decodeMismatch(result.failure, contentType))
    }, contentType),
    encode: guardEncode((value: A) => {
      const result = encodeValue(value)
      if (Result.isFailure(result)) {
        return Result.fail(
          encodeMismatch(result.failure, contentType)
        )
      }
      let text: string | undefined
      try {
        text = JSON.stringify(result.success)
      } catch (cause) {
        return Result.fail(
          new EncodeError({ message: `Value is not JSON serialisable: ${errorMessage(cause)}`, contentType, cause })
        )
      }
      if (text === undefined) {
        return Result.fail(
          new EncodeError({
            message: "Value is not JSON serialisable (JSON.stringify returned undefined)",
            contentType
          })
        )
      }
      return Result.succeed(textEncoder.encode(text))
    }, contentType)
  })
}

/**
 * UTF-8 text decoded and encoded by a Schema over strings, e.g.
 * `fromStringSchema(Schema.NumberFromString)` or a branded string schema.
 * The Schema decoder and encoder are compiled once per codec.
 *
 * @category codecs
 * @since 0.1.0
 */
export const fromStringSchema = <A>(
  schema: Schema.Codec<A, string, never, never>,
  options?: { readonly contentType?: string | undefined; readonly compile?: boolean | undefined }
): Codec<A> => {
  const contentType = options?.contentType ?? "text/plain; charset=utf-8"
  if (options?.compile !== false) compile(schema)
  const decodeValue = Schema.decodeUnknownResult(schema)
  const encodeValue = Schema.encodeResult(schema)
  return markGuarded({
    contentType,
    decode: guardDecode((bytes) => {
      const text = utf8Decode(bytes, contentType)
      if (Result.isFailure(text)) return Result.fail(text.failure)
      const result = decodeValue(text.success)
      // a success has no error: it is returned as it is, not wrapped again
      return Result.isSuccess(result)
        ? result as Result.Result<A, never>
        : Result.fail(decodeMismatch(result.failure, contentType))
    }, contentType),
    encode: guardEncode((value: A) => {
      const result = encodeValue(value)
      return Result.isSuccess(result)
        ? utf8Encode(result.success, contentType)
        : Result.fail(
          encodeMismatch(result.failure, contentType)
        )
    }, contentType)
  })
}

/**
 * A codec, or a Schema to encode as JSON.
 *
 * @category models
 * @since 0.1.0
 */
export type Input<A> = Codec<A> | Schema.Codec<A, unknown, never, never>

/**
 * Whether a value is a `Codec` (rather than a Schema).
 *
 * @category guards
 * @since 0.1.0
 */
export const isCodec = (u: unknown): u is Codec<unknown> =>
  typeof u === "object" && u !== null && "decode" in u && "encode" in u && "contentType" in u

/**
 * The codec (guarded: what it throws is a failure), or the JSON codec of a
 * Schema.
 *
 * @category constructors
 * @since 0.1.0
 */
export const fromInput = <A>(input: Input<A>): Codec<A> =>
  isCodec(input) ? make(input as Codec<A>) : json(input as Schema.Codec<A, unknown, never, never>)
