/**
 * A throwaway PKI for test servers, made with Debian's `openssl` (on every
 * machine of the project, and the reference tool for certificates: no npm
 * dependency carries private-key generation for us): a CA, a server
 * certificate for `localhost` and `127.0.0.1` (usable on client ports and
 * cluster routes), and a client certificate, all in one temporary
 * directory, valid for a day, with P-256 keys.
 *
 * @internal
 */
import { execFile } from "node:child_process"
import * as FsP from "node:fs/promises"
import * as Path from "node:path"
import type { ServerTls } from "../layers/NatsServer.ts"

/** The files of a throwaway PKI, and its directory. */
export interface Pki extends ServerTls {
  readonly dir: string
}

const openssl = (args: ReadonlyArray<string>, cwd: string): Promise<void> =>
  new Promise((resolve, reject) => {
    execFile("openssl", [...args], { cwd }, (error, _stdout, stderr) => {
      if (error === null) resolve()
      else reject(new Error(`openssl ${args[0]} failed: ${stderr.trim() || error.message}`))
    })
  })

const ecKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

/** A key and certificate signed by the CA in `dir`, with the given extensions. */
const issue = async (dir: string, name: string, subject: string, extensions: string): Promise<void> => {
  await openssl(["req", ...ecKey, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject], dir)
  await FsP.writeFile(Path.join(dir, `${name}.ext`), extensions)
  await openssl([
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "1",
    "-out",
    `${name}.pem`,
    "-extfile",
    `${name}.ext`
  ], dir)
}

/** Makes a PKI in a new temporary directory under `parent`; the client certificate names `clientName`. */
export const make = async (parent: string, clientName: string): Promise<Pki> => {
  const dir = await FsP.mkdtemp(Path.join(parent, "effect-nats-tls-"))
  await openssl(
    ["req", "-x509", ...ecKey, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=effect-nats test CA"],
    dir
  )
  await issue(
    dir,
    "server",
    "/CN=localhost",
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n"
  )
  await issue(dir, "client", `/CN=${clientName}`, "extendedKeyUsage=clientAuth\n")
  return {
    dir,
    caFile: Path.join(dir, "ca.pem"),
    certFile: Path.join(dir, "server.pem"),
    keyFile: Path.join(dir, "server.key"),
    clientCertFile: Path.join(dir, "client.pem"),
    clientKeyFile: Path.join(dir, "client.key"),
    clientSubject: `CN=${clientName}`
  }
}
