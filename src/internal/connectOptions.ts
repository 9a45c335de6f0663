/**
 * The connection's options checked and resolved before anything is dialled:
 * server URLs (parsed; credentials in a URL taken into `auth`, as
 * `Redacted`, and removed from it), credentials (an NKey seed or a creds
 * file that cannot be used fails here, without its contents in the
 * message), and the durations. Every failure is `InvalidArgument` naming the
 * option.
 *
 * @internal
 */
import type { ConnectionOptions } from "@nats-io/nats-core"
import type { Authenticator } from "@nats-io/nats-core"
import {
  credsAuthenticator,
  nkeyAuthenticator,
  nkeys,
  tokenAuthenticator,
  usernamePasswordAuthenticator
} from "@nats-io/nats-core"
import type { Duration } from "effect"
import { Effect, Redacted, Result } from "effect"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as FsP from "node:fs/promises"
import * as Auth from "../schemas/Auth.ts"
import type * as NatsError from "../schemas/NatsError.ts"
import type * as Tls from "../schemas/Tls.ts"
import type { NatsClientOptions } from "../services/NatsClient.ts"
import { invalidArgument } from "./errors.ts"
import { duration } from "./validation.ts"

/** The options a connection is made with, checked. */
export interface Resolved {
  /** Server URLs without credentials. */
  readonly servers: ReadonlyArray<string>
  readonly auth: Auth.Auth | undefined
  readonly attemptTimeout: Duration.Duration
  readonly connectTimeout: Duration.Duration
  readonly drainTimeout: Duration.Duration
  readonly pingInterval: Duration.Duration | undefined
}

const operation = "connect"
const encoder = new TextEncoder()
const CREDS = /\s*(?:(?:[-]{3,}[^\n]*[-]{3,}\n)(.+)(?:\n\s*[-]{3,}[^\n]*[-]{3,}\n))/gi

/** A server URL: `nats://` or `tls://` (the default scheme is `nats://`), a host, a port in range. */
const parseServer = (text: string): URL | string => {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `nats://${text}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    return "is not a valid URL (or its port is out of range)"
  }
  if (url.protocol !== "nats:" && url.protocol !== "tls:") return `has the scheme ${url.protocol} (nats: or tls:)`
  if (url.hostname === "") return "has no host"
  if (url.port !== "" && !(Number(url.port) >= 1 && Number(url.port) <= 65535)) return "has a port out of range"
  return url
}

/** The URL without its credentials, for nats.js and for messages. */
const withoutCredentials = (url: URL): string => `${url.protocol}//${url.host}`

/** Credentials carried by a URL (`user:password@` or `token@`), as an `Auth`. */
const credentialsOf = (url: URL): Auth.Auth | undefined => {
  if (url.username === "" && url.password === "") return undefined
  const user = decodeURIComponent(url.username)
  return url.password === ""
    ? Auth.token(Redacted.make(user))
    : Auth.userPassword(user, Redacted.make(decodeURIComponent(url.password)))
}

const sameAuth = (a: Auth.Auth, b: Auth.Auth): boolean => {
  if (a._tag === "UserPassword" && b._tag === "UserPassword") {
    return a.user === b.user && Redacted.value(a.password) === Redacted.value(b.password)
  }
  return a._tag === "Token" && b._tag === "Token" && Redacted.value(a.token) === Redacted.value(b.token)
}

/** The servers of the options (a list, or one comma-separated string), parsed; the credentials of their URLs. */
const resolveServers = (
  servers: NatsClientOptions["servers"]
): Result.Result<{ readonly urls: Array<string>; readonly auth: Auth.Auth | undefined }, NatsError.NatsError> => {
  const list = servers === undefined
    ? ["nats://127.0.0.1:4222"]
    : typeof servers === "string"
    ? servers.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
    : [...servers]
  if (list.length === 0) return Result.fail(invalidArgument(operation, "servers must name at least one server"))
  const urls: Array<string> = []
  let auth: Auth.Auth | undefined
  for (const [i, text] of list.entries()) {
    const parsed = typeof text === "string" ? parseServer(text) : "is not a string"
    if (typeof parsed === "string") return Result.fail(invalidArgument(operation, `servers[${i}] ${parsed}`))
    const credentials = credentialsOf(parsed)
    if (credentials !== undefined) {
      if (auth !== undefined && !sameAuth(auth, credentials)) {
        return Result.fail(invalidArgument(operation, "the server URLs carry different credentials"))
      }
      auth = credentials
    }
    urls.push(withoutCredentials(parsed))
  }
  return Result.succeed({ urls, auth })
}

const credsProblem = (text: string, what: string): string | undefined => {
  CREDS.lastIndex = 0
  const jwt = CREDS.exec(text)?.[1]?.trim()
  const seed = CREDS.exec(text)?.[1]?.trim()
  if (jwt === undefined || seed === undefined) {
    return `${what} are not a creds file (a user JWT and an NKey seed, each between ----- lines)`
  }
  if (jwt.split(".").length !== 3) return `${what}' user JWT is not a JWT`
  return seedProblem(seed, `${what}' NKey seed`)
}

const readCreds = (path: string): Uint8Array => Fs.readFileSync(path)

/** The seed of a seed file: alone, or decorated between `-----` lines (the first seed it holds). */
const readSeed = (path: string): Uint8Array => {
  const text = Fs.readFileSync(path, "utf8")
  return encoder.encode(/\bS[UAO][A-Z2-7]{50,}\b/.exec(text)?.[0] ?? text.trim())
}

/** What is wrong with a file of credentials: unreadable, or what `problem` finds in it. */
const fileProblem = (
  path: string,
  what: string,
  read: (path: string) => Uint8Array,
  problem: (text: string) => string | undefined
): string | undefined => {
  let text: string
  try {
    text = new TextDecoder().decode(read(path))
  } catch (cause) {
    return `auth: cannot read the ${what} ${path} (${(cause as { readonly code?: string }).code ?? "error"})`
  }
  return problem(text)
}

/** What is wrong with credentials, if anything (never their contents). */
export const authProblem = (auth: Auth.Auth): string | undefined => {
  switch (auth._tag) {
    case "UserPassword":
      return auth.user === "" ? "auth: the user name is empty" : undefined
    case "Token":
      return Redacted.value(auth.token) === "" ? "auth: the token is empty" : undefined
    case "NKey":
      return seedProblem(Redacted.value(auth.seed), "auth: the NKey seed")
    case "Creds":
      return credsProblem(Redacted.value(auth.creds), "auth: the creds")
    case "NKeyFile":
      return fileProblem(
        auth.path,
        "NKey seed file",
        readSeed,
        (seed) => seedProblem(seed, `auth: the NKey seed of ${auth.path}`)
      )
    case "CredsFile":
      return fileProblem(
        auth.path,
        "creds file",
        readCreds,
        (text) => credsProblem(text, `auth: the creds of ${auth.path}`)
      )
  }
}

const seedProblem = (seed: string, what: string): string | undefined => {
  try {
    nkeys.fromSeed(encoder.encode(seed))
    return undefined
  } catch {
    return `${what} is not a valid seed`
  }
}

/**
 * The options checked, with their defaults; `auth` is the credentials to
 * connect with (the options' own, or what their Effect gave).
 */
export const resolve = (
  options: NatsClientOptions,
  given: Auth.Auth | undefined
): Result.Result<Resolved, NatsError.NatsError> => {
  const servers = resolveServers(options.servers)
  if (Result.isFailure(servers)) return Result.fail(servers.failure)
  const fromUrl = servers.success.auth
  if (fromUrl !== undefined && given !== undefined) {
    return Result.fail(invalidArgument(operation, "credentials are given both in a server URL and in auth"))
  }
  const auth = given ?? fromUrl
  const problem = auth === undefined ? undefined : authProblem(auth)
  if (problem !== undefined) return Result.fail(invalidArgument(operation, problem))
  if (options.onEvent !== undefined && typeof options.onEvent !== "function") {
    return Result.fail(invalidArgument(operation, "onEvent must be a function of a ConnectionEvent"))
  }
  return Result.all({
    attemptTimeout: duration(operation, "connectAttemptTimeout", options.connectAttemptTimeout, "3 seconds"),
    connectTimeout: duration(operation, "connectTimeout", options.connectTimeout, "15 seconds"),
    drainTimeout: duration(operation, "drainTimeout", options.drainTimeout, "10 seconds"),
    pingInterval: options.pingInterval === undefined
      ? Result.succeed(undefined)
      : duration(operation, "pingInterval", options.pingInterval, 0)
  }).pipe(Result.map((durations) => ({ servers: servers.success.urls, auth, ...durations })))
}

// -----------------------------------------------------------------------------
// TLS
// -----------------------------------------------------------------------------

/** nats.js' TLS options, with the Node options it hands to `tls.connect`. */
export interface NatsTls {
  readonly ca?: string
  readonly cert?: string
  readonly key?: string
  readonly minVersion: "TLSv1.2" | "TLSv1.3"
  readonly servername?: string
}

/** The contents of a PEM option: read from its file, or given; `undefined` when neither. */
const pem = (
  name: string,
  file: string | undefined,
  contents: string | undefined
): Effect.Effect<string | undefined, NatsError.NatsError> => {
  if (file !== undefined && contents !== undefined) {
    return Effect.fail(invalidArgument(operation, `tls: give ${name}File or ${name}, not both`))
  }
  if (file === undefined) return Effect.succeed(contents)
  return Effect.tryPromise({
    try: () => FsP.readFile(file, "utf8"),
    catch: (cause) =>
      invalidArgument(
        operation,
        `tls.${name}File: cannot read ${file} (${(cause as { readonly code?: string }).code ?? String(cause)})`
      )
  })
}

const certificate = (text: string, name: string): Effect.Effect<Crypto.X509Certificate, NatsError.NatsError> =>
  Effect.try({
    try: () => new Crypto.X509Certificate(text),
    catch: () => invalidArgument(operation, `tls.${name}: not a PEM certificate`)
  })

/**
 * The TLS options checked: files readable, certificates and the key parse,
 * the key is the certificate's (never the key's text in a message).
 */
export const resolveTls = (tls: Tls.Tls | undefined): Effect.Effect<NatsTls | undefined, NatsError.NatsError> =>
  tls === undefined ? Effect.succeed(undefined) : Effect.gen(function*() {
    if (tls.minVersion !== undefined && tls.minVersion !== "TLSv1.2" && tls.minVersion !== "TLSv1.3") {
      return yield* invalidArgument(
        operation,
        `tls.minVersion must be TLSv1.2 or TLSv1.3, got ${String(tls.minVersion)}`
      )
    }
    const ca = yield* pem("ca", tls.caFile, tls.ca)
    const cert = yield* pem("cert", tls.certFile, tls.cert)
    const key = yield* pem("key", tls.keyFile, tls.key === undefined ? undefined : Redacted.value(tls.key))
    if (ca !== undefined) yield* certificate(ca, "ca")
    if ((cert === undefined) !== (key === undefined)) {
      return yield* invalidArgument(operation, "tls: a client certificate and its key go together")
    }
    if (cert !== undefined && key !== undefined) {
      const x509 = yield* certificate(cert, "cert")
      const privateKey = yield* Effect.try({
        try: () => Crypto.createPrivateKey(key),
        catch: () => invalidArgument(operation, "tls.key: not a PEM private key")
      })
      if (!x509.checkPrivateKey(privateKey)) {
        return yield* invalidArgument(operation, "tls.key: not the private key of tls.cert")
      }
    }
    const resolved: NatsTls = {
      ...(ca === undefined ? {} : { ca }),
      ...(cert === undefined ? {} : { cert }),
      ...(key === undefined ? {} : { key }),
      minVersion: tls.minVersion ?? "TLSv1.2",
      ...(tls.serverName === undefined ? {} : { servername: tls.serverName })
    }
    return resolved
  })

/** The credentials of a connection: the current ones, and how to fetch them again when they rotate. */
export interface Credentials {
  readonly current: () => Auth.Auth | undefined
  /** Runs the options' Effect again and keeps what it gives (checked); `undefined` when they do not rotate. */
  readonly refresh: Effect.Effect<void, NatsError.NatsError> | undefined
}

/** Credentials from an Effect, checked. */
const fetched = (source: Effect.Effect<Auth.Auth, NatsError.NatsError>) =>
  Effect.flatMap(source, (auth) => {
    const problem = authProblem(auth)
    return problem === undefined ? Effect.succeed(auth) : Effect.fail(invalidArgument(operation, problem))
  })

/** The credentials of the options: the `auth` to connect with first, and the credentials that follow. */
export const credentials = Effect.fnUntraced(function*(source: NatsClientOptions["auth"]) {
  if (!Effect.isEffect(source)) return { first: source, follow: (auth: Auth.Auth | undefined) => fixed(auth) }
  const first = yield* fetched(source)
  return {
    first,
    follow: (auth: Auth.Auth | undefined): Credentials => {
      let current = auth
      return {
        current: () => current,
        refresh: Effect.map(fetched(source), (next) => {
          current = next
        })
      }
    }
  }
})

const fixed = (auth: Auth.Auth | undefined): Credentials => ({ current: () => auth, refresh: undefined })

/** The nats.js authenticator of credentials (a creds file is read on each call). */
const authenticatorOf = (auth: Auth.Auth): Authenticator => {
  switch (auth._tag) {
    case "UserPassword":
      return usernamePasswordAuthenticator(auth.user, Redacted.value(auth.password))
    case "Token":
      return tokenAuthenticator(Redacted.value(auth.token))
    case "NKey":
      return nkeyAuthenticator(encoder.encode(Redacted.value(auth.seed)))
    case "NKeyFile":
      return nkeyAuthenticator(() => readSeed(auth.path))
    case "Creds":
      return credsAuthenticator(encoder.encode(Redacted.value(auth.creds)))
    case "CredsFile":
      return credsAuthenticator(() => readCreds(auth.path))
  }
}

/**
 * The nats.js options of the credentials: `current()` is asked on every
 * connect and reconnect (credentials that rotate). A rotating source keeps
 * reconnecting after refused credentials (nats.js would give up after two),
 * for the next dial may bring new ones; the reconnect schedule bounds it.
 */
export const authOptions = (current: () => Auth.Auth | undefined, rotating: boolean): Partial<ConnectionOptions> => {
  if (current() === undefined) return {}
  return {
    authenticator: ((nonce?: string) => {
      const auth = current()
      return auth === undefined ? {} : authenticatorOf(auth)(nonce)
    }) as Authenticator,
    ...(rotating ? { ignoreAuthErrorAbort: true } : {})
  }
}
