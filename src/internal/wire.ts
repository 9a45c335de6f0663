/**
 * Building blocks of the JetStream configuration schemas.
 *
 * Optional fields that stay absent on the wire, a struct whose equivalence
 * treats an absent and an `undefined` field alike, and the field-by-field
 * diff derived from a schema's fields.
 *
 * @internal
 */
import { Duration, Option, Schema, SchemaTransformation } from "effect"

/**
 * An optional field: `T | undefined` on the type side (as `Schema.optional`),
 * an absent key on the wire. An `undefined` value is left out when encoding,
 * so it never reaches nats.js (whose update merges the request into the
 * current configuration, where an `undefined` would erase a value).
 *
 * @category schemas
 * @since 0.1.0
 */
export const optional = <S extends Schema.Top>(schema: S) =>
  Schema.optionalKey(Schema.toEncoded(schema)).pipe(
    Schema.decodeTo(
      Schema.optional(schema),
      SchemaTransformation.transformOptional({
        decode: (wire) => wire,
        encode: Option.filter((value) => value !== undefined)
      })
    )
  )

type Equivalences = ReadonlyArray<readonly [key: string, equivalence: (a: unknown, b: unknown) => boolean]>

const equivalencesOf = (fields: Schema.Struct.Fields): Equivalences =>
  Object.entries(fields).map(([key, field]) => [key, Schema.toEquivalence(Schema.toType(field))] as const)

/**
 * A struct of configuration fields. Its equivalence (`Schema.toEquivalence`)
 * compares field by field, each with its own equivalence, and an unset field
 * (absent or `undefined`) equals an unset one: the wire cannot tell them apart.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Struct = <const Fields extends Schema.Struct.Fields>(fields: Fields) => {
  const equivalences = equivalencesOf(fields)
  return Schema.Struct(fields).pipe(Schema.overrideToEquivalence(() => (a, b) => {
    const x: Record<string, unknown> = a
    const y: Record<string, unknown> = b
    return equivalences.every(([key, equivalent]) => {
      const u = x[key]
      const v = y[key]
      return u === undefined || v === undefined ? u === v : equivalent(u, v)
    })
  }))
}

/**
 * Whether a value is what nats-server leaves out of a reported
 * configuration: it marshals most fields with Go's `omitempty`, so a field at
 * its zero value (`""`, `false`, `0`, an empty list, a zero duration) is not
 * reported.
 */
const isOmittedByServer = (value: unknown): boolean =>
  value === "" || value === false || value === 0 || (Array.isArray(value) && value.length === 0) ||
  (Duration.isDuration(value) && Duration.isZero(value))

/**
 * The change detection of a configuration schema, derived from its (type
 * side) fields: the names of the fields set in `requested` whose value is not
 * equivalent (`Schema.toEquivalence` of the field) to the one in `current`, a
 * configuration read back from the server. A field the server left out of
 * `current` equals a requested zero value. Names come in field order.
 *
 * @category comparisons
 * @since 0.1.0
 */
export const diff = <const Fields extends Schema.Struct.Fields>(fields: Fields) => {
  const equivalences = equivalencesOf(fields)
  type Config = { readonly [K in keyof Fields]?: unknown }
  return (requested: Config, current: Config): ReadonlyArray<keyof Fields & string> => {
    const r: Record<string, unknown> = requested
    const c: Record<string, unknown> = current
    return equivalences.flatMap(([key, equivalent]) => {
      const value = r[key]
      const now = c[key]
      if (value === undefined) return []
      return (now === undefined ? isOmittedByServer(value) : equivalent(value, now)) ? [] : [key]
    })
  }
}
