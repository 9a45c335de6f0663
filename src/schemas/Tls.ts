/**
 * TLS settings of a connection: the CA to trust, a client certificate for
 * mutual TLS (its key `Redacted` when given as contents), the lowest
 * version, the name the server's certificate must be valid for; and the
 * same from configuration (file paths).
 *
 * Supported by nats-server 2.9: TLS on the client port (the client upgrades
 * after the server's INFO, whether the URL is `nats://` or `tls://`),
 * `verify` (a client certificate is required) and `verify_and_map`. Not
 * offered: the TLS-first handshake (`handshake_first`, nats-server 2.10.4+).
 *
 * @since 0.1.0
 */
import type { Redacted } from "effect"
import { Config, Option } from "effect"

/**
 * How a connection does TLS. Every certificate and key is PEM: a file path
 * (`...File`) or the contents. With any of these set, or a `tls://` URL,
 * TLS is required (a server without it is a `TlsError`); otherwise the
 * connection is TLS when the server requires it (trusting the system's CAs).
 *
 * @category models
 * @since 0.1.0
 */
export interface Tls {
  /** The CA certificate(s) to trust, a file. Default: the system's CAs. */
  readonly caFile?: string | undefined
  /** The CA certificate(s) to trust, PEM contents. */
  readonly ca?: string | undefined
  /** A client certificate for mutual TLS, a file. */
  readonly certFile?: string | undefined
  /** A client certificate for mutual TLS, PEM contents. */
  readonly cert?: string | undefined
  /** The client certificate's private key, a file. */
  readonly keyFile?: string | undefined
  /** The client certificate's private key, PEM contents (never logged). */
  readonly key?: Redacted.Redacted<string> | undefined
  /** The lowest TLS version accepted. Default `TLSv1.2` (the article's `MinVersion`). */
  readonly minVersion?: "TLSv1.2" | "TLSv1.3" | undefined
  /** The name the server's certificate must be valid for. Default: the host of the URL. */
  readonly serverName?: string | undefined
}

/**
 * TLS from configuration: `NATS_TLS_CA`, `NATS_TLS_CERT` and `NATS_TLS_KEY`
 * (file paths), `NATS_TLS_SERVER_NAME`; `None` when none is set.
 *
 * @category config
 * @since 0.1.0
 */
export const config: Config.Config<Option.Option<Tls>> = Config.all({
  ca: Config.option(Config.String("NATS_TLS_CA")),
  cert: Config.option(Config.String("NATS_TLS_CERT")),
  key: Config.option(Config.String("NATS_TLS_KEY")),
  serverName: Config.option(Config.String("NATS_TLS_SERVER_NAME"))
}).pipe(Config.map(({ ca, cert, key, serverName }) => {
  if (Option.isNone(ca) && Option.isNone(cert) && Option.isNone(key) && Option.isNone(serverName)) {
    return Option.none<Tls>()
  }
  return Option.some<Tls>({
    ...(Option.isSome(ca) ? { caFile: ca.value } : {}),
    ...(Option.isSome(cert) ? { certFile: cert.value } : {}),
    ...(Option.isSome(key) ? { keyFile: key.value } : {}),
    ...(Option.isSome(serverName) ? { serverName: serverName.value } : {})
  })
}))
