// Shared by the APNs tests: stand-in push and TLS certificates, a bare HTTP/2 recorder of what a sender puts
// on the wire, random device tokens, and a poll for conditions reached asynchronously.
import http2 from 'node:http2';
import { randomBytes, randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import forge from 'node-forge';

const UID_OID = '0.9.2342.19200300.100.1.1';

/** A self-signed stand-in for an MDM push certificate: subject UID = topic, as Apple issues them. */
export function makePushCertificate(topic = `com.apple.mgmt.External.${randomUUID()}`) {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01' + randomBytes(8).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  const subject = [
    { type: UID_OID, value: topic },
    { name: 'commonName', value: `APSP:${randomUUID()}` },
    { name: 'countryName', value: 'US' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey), topic };
}

/** A self-signed TLS server certificate for 127.0.0.1, used as its own trust anchor. */
function makeServerCertificate() {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '01' + randomBytes(8).toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject([{ name: 'commonName', value: 'recorder' }]);
  cert.setIssuer([{ name: 'commonName', value: 'recorder' }]);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true },
    { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) };
}

/** A bare HTTP/2 server that records what a sender really puts on the wire and answers 200. */
export async function startRecorder(opts: { goawayAfterReply?: boolean } = {}) {
  const server = makeServerCertificate();
  const requests: Array<{ headers: http2.IncomingHttpHeaders; body: string; clientCert?: Buffer }> = [];
  const state = { sessions: 0, closedSessions: 0 };
  const h2 = http2.createSecureServer({ cert: server.certPem, key: server.keyPem, requestCert: true, rejectUnauthorized: false });
  const live = new Set<http2.ServerHttp2Session>();
  h2.on('session', (session) => {
    state.sessions++;
    live.add(session);
    session.on('close', () => live.delete(session));
  });
  h2.on('secureConnection', (socket: TLSSocket) => socket.on('close', () => state.closedSessions++));
  h2.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const session = stream.session!;
      const socket = session.socket as TLSSocket;
      requests.push({ headers, body: Buffer.concat(chunks).toString('utf8'), clientCert: socket.getPeerCertificate().raw });
      stream.respond({ ':status': 200, 'apns-id': '11111111-2222-3333-4444-555555555555' });
      stream.end(() => {
        if (!opts.goawayAfterReply) return;
        // As APNs does when it retires a connection: GOAWAY with a {reason}, then close.
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id!, Buffer.from('{"reason":"Shutdown"}'));
        session.close();
      });
    });
  });
  await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
  const port = (h2.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    caPem: server.certPem,
    requests,
    get sessions() {
      return state.sessions;
    },
    get closedSessions() {
      return state.closedSessions;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of live) s.destroy();
        h2.close(() => r());
      }),
  };
}

export const newToken = () => randomBytes(32).toString('hex');

export async function waitFor(what: string, cond: () => boolean, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
