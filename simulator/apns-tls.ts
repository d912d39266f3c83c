// The simulated APNs's TLS identity: a throwaway CA and a server certificate for 127.0.0.1/localhost (and
// the host it listens on) signed by it. Clients trust the CA through APNS_CA_FILE / caPem.
import { randomBytes } from 'node:crypto';
import forge from 'node-forge';

const DAY_MS = 86_400_000;

function serialNumber(): string {
  // Positive DER integer: clear the top bit.
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f;
  return bytes.toString('hex');
}

/** A fresh key pair and an unsigned certificate for it, valid from a minute ago for `days`. */
function newCertificate(days: number): { keys: forge.pki.rsa.KeyPair; cert: forge.pki.Certificate } {
  const now = Date.now();
  const keys = forge.pki.rsa.generateKeyPair({ bits: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = new Date(now - 60_000);
  cert.validity.notAfter = new Date(now + days * DAY_MS);
  return { keys, cert };
}

/** A throwaway CA and a server certificate for 127.0.0.1/localhost signed by it. */
export function generateServerTls(host: string): { caPem: string; certPem: string; keyPem: string } {
  const { keys: caKeys, cert: ca } = newCertificate(10 * 365);
  const caName = [{ name: 'commonName', value: 'Simulated APNs CA' }, { name: 'organizationName', value: 'vpp-mdm simulator' }];
  ca.setSubject(caName);
  ca.setIssuer(caName);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.privateKey, forge.md.sha256.create());

  const { keys, cert: leaf } = newCertificate(2 * 365);
  leaf.setSubject([{ name: 'commonName', value: 'api.push.apple.com (simulated)' }]);
  leaf.setIssuer(ca.subject.attributes);
  const altNames: Array<{ type: number; value?: string; ip?: string }> = [
    { type: 2, value: 'localhost' },
    { type: 7, ip: '127.0.0.1' },
  ];
  if (host !== '127.0.0.1' && host !== 'localhost' && host !== '0.0.0.0') {
    altNames.push(/^[\d.]+$/.test(host) ? { type: 7, ip: host } : { type: 2, value: host });
  }
  leaf.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
  ]);
  leaf.sign(caKeys.privateKey, forge.md.sha256.create());

  return {
    caPem: forge.pki.certificateToPem(ca),
    certPem: forge.pki.certificateToPem(leaf),
    keyPem: forge.pki.privateKeyToPem(keys.privateKey),
  };
}
