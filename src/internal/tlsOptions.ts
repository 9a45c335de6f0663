/**
 * The `tls` option checked before anything is dialled: its shape (plain
 * JavaScript can pass anything), files that are regular and readable, every
 * certificate of a bundle and the key parse, the key is the certificate's.
 * A message never shows a key, nor a "path" that holds PEM text. A `tls://`
 * URL without options still requires TLS (nats.js would otherwise connect in
 * the clear to a server that does not offer it).
 *
 * @internal
 */
import type { Duration } from "effect"
import { Effect, Redacted } from "effect"
import * as Crypto from "node:crypto"
import * as FsP from "node:fs/promises"
import type * as NatsError from "../schemas/NatsError.ts"
import type * as Tls from "../schemas/Tls.ts"
import { shown } from "./credentials.ts"
import { invalidArgument, timeout } from "./errors.ts"

const operation = "connect"

/** Bytes a PEM file may have (a system CA bundle is about 200 kB). */
const MAX_PEM_BYTES = 4 * 1024 * 1024

/** nats.js' TLS options, with the Node options it hands to `tls.connect`. */
export interface NatsTls {
  readonly ca?: string
  readonly cert?: string
  readonly key?: string
  readonly minVersion: "TLSv1.2" | "TLSv1.3"
  readonly servername?: string
}

const fail = (message: string) => Effect.fail(invalidArgument(operation, message))

/** A path as a message shows it: never PEM text given where a path belongs. */
const pathShown = (path: string): string => /-----BEGIN|\n/.test(path) ? "(PEM text given as a path)" : shown(path)

/** A PEM file's text: a regular file, not too large. */
const readPem = (name: string, file: string): Effect.Effect<string, NatsError.NatsError> =>
  Effect.tryPromise({
    try: async () => {
      const stat = await FsP.stat(file)
      if (!stat.isFile()) throw Object.assign(new Error(), { code: "not a regular file" })
      if (stat.size > MAX_PEM_BYTES) throw Object.assign(new Error(), { code: `larger than ${MAX_PEM_BYTES} bytes` })
      return FsP.readFile(file, "utf8")
    },
    catch: (cause) =>
      invalidArgument(
        operation,
        `tls.${name}File: cannot read ${pathShown(file)} (${(cause as { readonly code?: string }).code ?? "error"})`
      )
  })

/** The contents of a PEM option: read from its file, or given; `undefined` when neither. */
const pem = (
  name: string,
  file: unknown,
  contents: unknown
): Effect.Effect<string | undefined, NatsError.NatsError> => {
  if (file !== undefined && contents !== undefined) return fail(`tls: give ${name}File or ${name}, not both`)
  if (file !== undefined) {
    return typeof file === "string" && file !== ""
      ? readPem(name, file)
      : fail(`tls.${name}File must be a path`)
  }
  return contents === undefined || typeof contents === "string"
    ? Effect.succeed(contents)
    : fail(`tls.${name} must be PEM text`)
}

/** Every certificate of a PEM text (a bundle: all of them must parse, and nothing else be there). */
const certificates = (text: string, name: string): Effect.Effect<Crypto.X509Certificate, NatsError.NatsError> =>
  Effect.suspend(() => {
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []
    if (blocks.length === 0) return fail(`tls.${name}: not a PEM certificate`)
    if (text.replace(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g, "").trim() !== "") {
      return fail(`tls.${name}: holds something other than PEM certificates`)
    }
    const parsed: Array<Crypto.X509Certificate> = []
    for (const [i, block] of blocks.entries()) {
      try {
        parsed.push(new Crypto.X509Certificate(block))
      } catch {
        return fail(`tls.${name}: certificate ${i + 1} of ${blocks.length} does not parse`)
      }
    }
    return Effect.succeed(parsed[0] as Crypto.X509Certificate)
  })

/** The key's text: `Redacted` contents (never shown), or a file. */
const keyContents = (tls: Tls.Tls): Effect.Effect<string | undefined, NatsError.NatsError> => {
  if (tls.key === undefined) return pem("key", tls.keyFile, undefined)
  if (tls.keyFile !== undefined) return fail("tls: give keyFile or key, not both")
  if (!Redacted.isRedacted(tls.key)) return fail("tls.key must be Redacted (Redacted.make(pem))")
  try {
    const text: unknown = Redacted.value(tls.key)
    return typeof text === "string" ? Effect.succeed(text) : fail("tls.key must be PEM text")
  } catch {
    return fail("tls.key was wiped (Redacted.wipe)")
  }
}

const checkShape = (tls: Tls.Tls): string | undefined => {
  if (tls.minVersion !== undefined && tls.minVersion !== "TLSv1.2" && tls.minVersion !== "TLSv1.3") {
    return `tls.minVersion must be TLSv1.2 or TLSv1.3, got ${shown(String(tls.minVersion))}`
  }
  if (tls.serverName !== undefined && (typeof tls.serverName !== "string" || tls.serverName === "")) {
    return "tls.serverName must be a host name"
  }
  return undefined
}

const check = (tls: Tls.Tls): Effect.Effect<NatsTls, NatsError.NatsError> =>
  Effect.gen(function*() {
    const wrong = checkShape(tls)
    if (wrong !== undefined) return yield* fail(wrong)
    const ca = yield* pem("ca", tls.caFile, tls.ca)
    const cert = yield* pem("cert", tls.certFile, tls.cert)
    const key = yield* keyContents(tls)
    if (ca !== undefined) yield* certificates(ca, "ca")
    if ((cert === undefined) !== (key === undefined)) {
      return yield* fail("tls: a client certificate and its key go together")
    }
    if (cert !== undefined && key !== undefined) {
      const x509 = yield* certificates(cert, "cert")
      const privateKey = yield* Effect.try({
        try: () => Crypto.createPrivateKey(key),
        catch: () => invalidArgument(operation, "tls.key: not a PEM private key")
      })
      if (!x509.checkPrivateKey(privateKey)) return yield* fail("tls.key: not the private key of tls.cert")
    }
    return {
      ...(ca === undefined ? {} : { ca }),
      ...(cert === undefined ? {} : { cert }),
      ...(key === undefined ? {} : { key }),
      minVersion: tls.minVersion ?? "TLSv1.2",
      ...(tls.serverName === undefined ? {} : { servername: tls.serverName })
    }
  })

/**
 * The TLS options checked within `within` (a path may name something slow
 * to read): `undefined` for a plain connection; with `required` (a `tls://`
 * URL), TLS even without options.
 */
export const resolve = (
  tls: unknown,
  required: boolean,
  within: Duration.Duration
): Effect.Effect<NatsTls | undefined, NatsError.NatsError> => {
  if (tls === undefined) return Effect.succeed(required ? { minVersion: "TLSv1.2" } : undefined)
  if (typeof tls !== "object" || tls === null || Array.isArray(tls)) {
    return fail("tls must be an object of TLS options (see the Tls module)")
  }
  return check(tls as Tls.Tls).pipe(
    Effect.timeoutOrElse({
      duration: within,
      orElse: () =>
        Effect.fail(timeout(operation, "tls: reading the certificates did not complete within connectTimeout"))
    })
  )
}
