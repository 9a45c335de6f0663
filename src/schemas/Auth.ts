/**
 * How a client authenticates: user/password, token, NKey or creds (JWT).
 *
 * Secrets are `Redacted` values: they are unwrapped only when handed to
 * nats.js and never appear in logs, errors or `toString`.
 *
 * @since 0.1.0
 */
import { Config, ConfigProvider, Option, Redacted, Schema } from "effect"

/**
 * Username and password authentication.
 *
 * @category schemas
 * @since 0.1.0
 */
export const UserPassword = Schema.TaggedStruct("UserPassword", {
  user: Schema.String,
  password: Schema.Redacted(Schema.String)
})

/**
 * Token authentication.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Token = Schema.TaggedStruct("Token", { token: Schema.Redacted(Schema.String) })

/**
 * NKey authentication: the user's seed (`SU...`) signs the server's nonce.
 *
 * @category schemas
 * @since 0.1.0
 */
export const NKey = Schema.TaggedStruct("NKey", { seed: Schema.Redacted(Schema.String) })

/**
 * NKey authentication from a seed file (the article's `NkeyOptionFromSeed`):
 * the seed alone or decorated (between `-----` lines), read again on every
 * connect and reconnect.
 *
 * @category schemas
 * @since 0.1.0
 */
export const NKeyFile = Schema.TaggedStruct("NKeyFile", { path: Schema.String })

/**
 * Decentralised (JWT) authentication from the contents of a `.creds` file.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Creds = Schema.TaggedStruct("Creds", { creds: Schema.Redacted(Schema.String) })

/**
 * Decentralised (JWT) authentication from a `.creds` file, read again on
 * every connect and reconnect (a rotated file is picked up).
 *
 * @category schemas
 * @since 0.1.0
 */
export const CredsFile = Schema.TaggedStruct("CredsFile", { path: Schema.String })

/**
 * Schema of every authentication kind.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Auth = Schema.Union([UserPassword, Token, NKey, NKeyFile, Creds, CredsFile])

/**
 * An authentication kind.
 *
 * @category models
 * @since 0.1.0
 */
export type Auth = typeof Auth.Type

/**
 * Username and password.
 *
 * @category constructors
 * @since 0.1.0
 */
export const userPassword = (user: string, password: string | Redacted.Redacted<string>): Auth => ({
  _tag: "UserPassword",
  user,
  password: Redacted.isRedacted(password) ? password : Redacted.make(password)
})

/**
 * A token.
 *
 * @category constructors
 * @since 0.1.0
 */
export const token = (value: string | Redacted.Redacted<string>): Auth => ({
  _tag: "Token",
  token: Redacted.isRedacted(value) ? value : Redacted.make(value)
})

/**
 * An NKey seed.
 *
 * @category constructors
 * @since 0.1.0
 */
export const nkey = (seed: string | Redacted.Redacted<string>): Auth => ({
  _tag: "NKey",
  seed: Redacted.isRedacted(seed) ? seed : Redacted.make(seed)
})

/**
 * An NKey seed file, read on every connect and reconnect.
 *
 * @category constructors
 * @since 0.1.0
 */
export const nkeyFile = (path: string): Auth => ({ _tag: "NKeyFile", path })

/**
 * The contents of a `.creds` file (user JWT and NKey seed).
 *
 * @category constructors
 * @since 0.1.0
 */
export const creds = (contents: string | Redacted.Redacted<string>): Auth => ({
  _tag: "Creds",
  creds: Redacted.isRedacted(contents) ? contents : Redacted.make(contents)
})

/**
 * A `.creds` file, read on every connect and reconnect.
 *
 * @category constructors
 * @since 0.1.0
 */
export const credsFile = (path: string): Auth => ({ _tag: "CredsFile", path })

/**
 * Reads the authentication kind from configuration: `NATS_USER` with
 * `NATS_PASSWORD`, else `NATS_TOKEN`, else `NATS_NKEY_SEED`, else
 * `NATS_NKEY_FILE` (a seed file's path), else `NATS_CREDS` (file contents),
 * else `NATS_CREDS_FILE` (a path); files are read on every connect. None of
 * them set gives `None`. `NATS_USER`
 * without `NATS_PASSWORD` (or the reverse) is a configuration error.
 *
 * @category config
 * @since 0.1.0
 */
export const config: Config.Config<Option.Option<Auth>> = Config.all({
  user: Config.option(Config.String("NATS_USER")),
  password: Config.option(Config.Redacted("NATS_PASSWORD")),
  token: Config.option(Config.Redacted("NATS_TOKEN")),
  seed: Config.option(Config.Redacted("NATS_NKEY_SEED")),
  seedPath: Config.option(Config.String("NATS_NKEY_FILE")),
  creds: Config.option(Config.Redacted("NATS_CREDS")),
  credsPath: Config.option(Config.String("NATS_CREDS_FILE"))
}).pipe(
  Config.flatMap(
    ({ creds: c, credsPath, password, seed, seedPath, token: t, user }): Config.Config<Option.Option<Auth>> => {
      if (Option.isSome(user) !== Option.isSome(password)) {
        return Config.fail(
          new ConfigProvider.SourceError({ message: "NATS_USER and NATS_PASSWORD must be set together" })
        )
      }
      if (Option.isSome(user) && Option.isSome(password)) {
        return Config.succeed(Option.some(userPassword(user.value, password.value)))
      }
      if (Option.isSome(t)) return Config.succeed(Option.some(token(t.value)))
      if (Option.isSome(seed)) return Config.succeed(Option.some(nkey(seed.value)))
      if (Option.isSome(seedPath)) return Config.succeed(Option.some(nkeyFile(seedPath.value)))
      if (Option.isSome(c)) return Config.succeed(Option.some(creds(c.value)))
      if (Option.isSome(credsPath)) return Config.succeed(Option.some(credsFile(credsPath.value)))
      return Config.succeed(Option.none())
    }
  )
)
