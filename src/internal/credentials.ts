/**
 * Credentials: checked before anything is sent (their shape, an NKey seed or
 * a creds file that cannot be used, a CONNECT line the server would refuse:
 * never their contents in a message), fetched from the options' Effect (and
 * again when the connection drops: rotation), and handed to nats.js as one
 * authenticator that asks for the current ones on every dial (files are read
 * again each time).
 *
 * @internal
 */
import type { Authenticator, ConnectionOptions } from "@nats-io/nats-core"
import {
  credsAuthenticator,
  nkeyAuthenticator,
  nkeys,
  tokenAuthenticator,
  usernamePasswordAuthenticator
} from "@nats-io/nats-core"
import type { Duration } from "effect"
import { Cause, Effect, Redacted } from "effect"
import * as Fs from "node:fs"
import type * as Auth from "../schemas/Auth.ts"
import * as NatsError from "../schemas/NatsError.ts"
import type { NatsClientOptions } from "../services/NatsClient.ts"
import { invalidArgument, timeout, unknown } from "./errors.ts"
import { MAX_CONTROL_BYTES } from "./validation.ts"

const operation = "connect"
const encoder = new TextEncoder()
const CREDS = /\s*(?:(?:[-]{3,}[^\n]*[-]{3,}\n)(.+)(?:\n\s*[-]{3,}[^\n]*[-]{3,}\n))/gi
const SEED = /\bS[UAO][A-Z2-7]{50,}\b/

/**
 * Bytes of the CONNECT line left to the credentials and the client's name:
 * the server's `max_control_line` (4096 by default) applies to it too, and the
 * other fields (version, flags, an NKey's public key and signature) take
 * about 400 bytes.
 */
const CONNECT_ROOM = MAX_CONTROL_BYTES - 448

/** A path as messages show it: bounded. */
export const shown = (path: string): string => path.length > 200 ? `${path.slice(0, 200)}...` : path

const constructors = "Auth.userPassword, Auth.token, Auth.nkey, Auth.nkeyFile, Auth.creds or Auth.credsFile"

// -----------------------------------------------------------------------------
// checks
// -----------------------------------------------------------------------------

/** The text of a secret field, or what is wrong with it (plain JavaScript can pass anything). */
const secretText = (value: unknown, what: string): { readonly text: string } | string => {
  if (!Redacted.isRedacted(value)) return `auth: ${what} must be Redacted (build the auth with ${constructors})`
  let text: unknown
  try {
    text = Redacted.value(value)
  } catch {
    return `auth: ${what} was wiped (Redacted.wipe)`
  }
  return typeof text === "string" ? { text } : `auth: ${what} must be a string`
}

/** What is wrong with a path option: not a string, or a path that holds what belongs in the file. */
const pathProblem = (path: unknown, what: string, contents: string): string | undefined => {
  if (typeof path !== "string" || path === "") return `auth: the ${what} path must be a non-empty string`
  // never echo it: it would carry the secret
  if (path.includes("\n") || SEED.test(path)) return `auth: the ${what} path looks like ${contents} themselves`
  return undefined
}

const seedProblem = (seed: string, what: string): string | undefined => {
  try {
    nkeys.fromSeed(encoder.encode(seed))
    return undefined
  } catch {
    return `${what} is not a valid seed`
  }
}

/** The user JWT of creds, or what is wrong with them. */
const credsJwt = (text: string, what: string): { readonly jwt: string } | string => {
  CREDS.lastIndex = 0
  const jwt = CREDS.exec(text)?.[1]?.trim()
  const seed = CREDS.exec(text)?.[1]?.trim()
  if (jwt === undefined || seed === undefined) {
    return `${what} are not a creds file (a user JWT and an NKey seed, each between ----- lines)`
  }
  if (jwt.split(".").length !== 3) return `${what}' user JWT is not a JWT`
  const problem = seedProblem(seed, `${what}' NKey seed`)
  return problem ?? { jwt }
}

/** Bytes a credentials file may have: creds are a few kB. */
const MAX_FILE_BYTES = 64 * 1024

/**
 * A credentials file's bytes: a regular file (a FIFO or a device would block
 * the process or never end), at most `MAX_FILE_BYTES`.
 */
export const readSmallFile = (path: string): Uint8Array => {
  const stat = Fs.statSync(path)
  if (!stat.isFile()) throw Object.assign(new Error("not a regular file"), { code: "not a regular file" })
  if (stat.size > MAX_FILE_BYTES) {
    throw Object.assign(new Error("too large"), { code: `larger than ${MAX_FILE_BYTES} bytes` })
  }
  return Fs.readFileSync(path)
}

/** Creds as the parser wants them: `\n` line ends. */
const normalized = (text: string): string => text.replace(/\r\n/g, "\n")

const readCreds = (path: string): Uint8Array =>
  encoder.encode(normalized(new TextDecoder().decode(readSmallFile(path))))

/** The seed of a seed file: alone, or decorated between `-----` lines (the first seed it holds). */
const readSeed = (path: string): Uint8Array => {
  const text = new TextDecoder().decode(readSmallFile(path))
  return encoder.encode(SEED.exec(text)?.[0] ?? text.trim())
}

/** The text of a file of credentials, or why it cannot be read. */
const fileText = (
  path: string,
  what: string,
  read: (path: string) => Uint8Array
): { readonly text: string } | string => {
  try {
    return { text: new TextDecoder().decode(read(path)) }
  } catch (cause) {
    return `auth: cannot read the ${what} ${shown(path)} (${(cause as { readonly code?: string }).code ?? "error"})`
  }
}

/** Bytes the credentials take on the CONNECT line (JSON-escaped), or what is wrong with them. */
const checked = (auth: unknown): { readonly bytes: number } | string => {
  if (typeof auth !== "object" || auth === null || !("_tag" in auth)) {
    return `auth must be built with ${constructors}`
  }
  const a = auth as Record<string, unknown>
  const bytes = (...texts: ReadonlyArray<string>) => ({ bytes: Buffer.byteLength(JSON.stringify(texts)) })
  switch (a._tag) {
    case "UserPassword": {
      if (typeof a.user !== "string") return "auth: the user name must be a string"
      if (a.user === "") return "auth: the user name is empty"
      const password = secretText(a.password, "the password")
      return typeof password === "string" ? password : bytes(a.user, password.text)
    }
    case "Token": {
      const token = secretText(a.token, "the token")
      if (typeof token === "string") return token
      return token.text === "" ? "auth: the token is empty" : bytes(token.text)
    }
    case "NKey": {
      const seed = secretText(a.seed, "the NKey seed")
      if (typeof seed === "string") return seed
      return seedProblem(seed.text, "auth: the NKey seed") ?? bytes()
    }
    case "NKeyFile": {
      const path = a.path as string
      const file = pathProblem(path, "NKey seed file", "a seed") ?? fileText(path, "NKey seed file", readSeed)
      if (typeof file === "string") return file
      return seedProblem(file.text, `auth: the NKey seed of ${shown(path)}`) ?? bytes()
    }
    case "Creds": {
      const creds = secretText(a.creds, "the creds")
      if (typeof creds === "string") return creds
      const jwt = credsJwt(normalized(creds.text), "auth: the creds")
      return typeof jwt === "string" ? jwt : bytes(jwt.jwt)
    }
    case "CredsFile": {
      const path = a.path as string
      const file = pathProblem(path, "creds file", "creds") ?? fileText(path, "creds file", readCreds)
      if (typeof file === "string") return file
      const jwt = credsJwt(file.text, `auth: the creds of ${shown(path)}`)
      return typeof jwt === "string" ? jwt : bytes(jwt.jwt)
    }
    default:
      return `auth must be built with ${constructors}`
  }
}

/**
 * What is wrong with credentials (and the client's name, which shares their
 * CONNECT line), if anything: never their contents.
 */
export const problem = (auth: unknown, name?: string): string | undefined => {
  const result = checked(auth)
  if (typeof result === "string") return result
  const total = result.bytes + (name === undefined ? 0 : Buffer.byteLength(JSON.stringify(name)))
  return total > CONNECT_ROOM
    ? `auth: the credentials${name === undefined ? "" : " and the name"} take ${total} bytes of the CONNECT line, ` +
      `more than the ${CONNECT_ROOM} that fit the server's max_control_line`
    : undefined
}

// -----------------------------------------------------------------------------
// sources
// -----------------------------------------------------------------------------

/** The credentials of a connection: the current ones, and how to fetch them again when they rotate. */
export interface Credentials {
  readonly current: () => Auth.Auth | undefined
  /** Runs the options' Effect again and keeps what it gives (checked); `undefined` when they do not rotate. */
  readonly refresh: Effect.Effect<void, NatsError.NatsError> | undefined
}

/**
 * Credentials from an Effect: within `within`, checked. A failure that is not
 * a `NatsError`, or a defect, is one (`Unknown`, the cause kept): the
 * caller's source never crashes the connect.
 */
const fetched = (
  source: Effect.Effect<Auth.Auth, NatsError.NatsError>,
  within: Duration.Duration
): Effect.Effect<Auth.Auth, NatsError.NatsError> =>
  Effect.suspend(() => source).pipe(
    Effect.timeoutOrElse({
      duration: within,
      orElse: () =>
        Effect.fail(timeout(operation, "auth: the credentials Effect did not complete within connectTimeout"))
    }),
    Effect.catchCause((cause): Effect.Effect<never, NatsError.NatsError> => {
      if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
      const error = Cause.squash(cause)
      return Effect.fail(
        NatsError.isNatsError(error) ? error : unknown(operation, "auth: the credentials Effect failed", error)
      )
    }),
    Effect.flatMap((auth) => {
      const wrong = problem(auth)
      return wrong === undefined ? Effect.succeed(auth) : Effect.fail(invalidArgument(operation, wrong))
    })
  )

/**
 * The credentials of the options: the `auth` to connect with first, and the
 * credentials that follow (an Effect runs within `within`, the connect
 * timeout, each time).
 */
export const fromOptions = Effect.fnUntraced(function*(source: NatsClientOptions["auth"], within: Duration.Duration) {
  if (!Effect.isEffect(source)) return { first: source, follow: (auth: Auth.Auth | undefined) => fixed(auth) }
  const first = yield* fetched(source, within)
  return {
    first,
    follow: (auth: Auth.Auth | undefined): Credentials => {
      let current = auth
      return {
        current: () => current,
        refresh: Effect.map(fetched(source, within), (next) => {
          current = next
        })
      }
    }
  }
})

const fixed = (auth: Auth.Auth | undefined): Credentials => ({ current: () => auth, refresh: undefined })

// -----------------------------------------------------------------------------
// nats.js
// -----------------------------------------------------------------------------

/**
 * A file read for each dial. One that cannot be read or used (mid-rotation,
 * say) is reported and the last good contents are used instead: nats.js
 * would otherwise close the connection for good; the next dial reads again.
 */
const reading = (
  read: (path: string) => Uint8Array,
  problemOf: (text: string) => string | undefined,
  path: string,
  what: string,
  report: (text: string) => void
) => {
  let last: Uint8Array | undefined
  return () => {
    let bytes: Uint8Array
    try {
      bytes = read(path)
    } catch (cause) {
      const code = (cause as { readonly code?: string }).code ?? "error"
      report(
        `nats: cannot read the ${what} ${shown(path)} (${code})${last === undefined ? "" : "; using its last contents"}`
      )
      if (last === undefined) throw cause
      return last
    }
    const wrong = problemOf(new TextDecoder().decode(bytes))
    if (wrong === undefined) return last = bytes
    report(`nats: ${wrong}${last === undefined ? "" : "; using its last contents"}`)
    return last ?? bytes
  }
}

/** The nats.js authenticator of credentials (a file is read on each call). */
const authenticatorOf = (auth: Auth.Auth, report: (text: string) => void): Authenticator => {
  switch (auth._tag) {
    case "UserPassword":
      return usernamePasswordAuthenticator(auth.user, Redacted.value(auth.password))
    case "Token":
      return tokenAuthenticator(Redacted.value(auth.token))
    case "NKey":
      return nkeyAuthenticator(encoder.encode(Redacted.value(auth.seed)))
    case "NKeyFile":
      return nkeyAuthenticator(
        reading(
          readSeed,
          (seed) => seedProblem(seed, `the NKey seed of ${shown(auth.path)}`),
          auth.path,
          "NKey seed file",
          report
        )
      )
    case "Creds":
      return credsAuthenticator(encoder.encode(normalized(Redacted.value(auth.creds))))
    case "CredsFile":
      return credsAuthenticator(reading(
        readCreds,
        (text) => {
          const jwt = credsJwt(text, `the creds of ${shown(auth.path)}`)
          return typeof jwt === "string" ? jwt : undefined
        },
        auth.path,
        "creds file",
        report
      ))
  }
}

/**
 * The nats.js options of the credentials: `current()` is asked on every
 * connect and reconnect (credentials that rotate). Rotating credentials (an
 * Effect, or a file) keep reconnecting after a refusal (nats.js would give up
 * after two), for the next dial may bring new ones; the reconnect schedule
 * bounds it. `report` hears of a credentials file that could not be used for
 * a dial.
 */
export const authOptions = (
  current: () => Auth.Auth | undefined,
  rotating: boolean,
  report: (text: string) => void
): Partial<ConnectionOptions> => {
  const first = current()
  if (first === undefined) return {}
  // one authenticator per credentials: a file's last good contents live in it
  let made: { readonly auth: Auth.Auth; readonly authenticator: Authenticator } | undefined
  const files = first._tag === "NKeyFile" || first._tag === "CredsFile"
  return {
    authenticator: ((nonce?: string) => {
      const auth = current()
      if (auth === undefined) return {}
      if (made?.auth !== auth) made = { auth, authenticator: authenticatorOf(auth, report) }
      return made.authenticator(nonce)
    }) as Authenticator,
    ...(rotating || files ? { ignoreAuthErrorAbort: true } : {})
  }
}
