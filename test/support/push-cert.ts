import forge from 'node-forge';

/** A self-signed push certificate with a chosen topic (the subject UID), e.g. the one real captures carry. */
export function pushCertificateFor(topic: string, opts: { notBefore?: Date; notAfter?: Date } = {}): { certificate: string; privateKey: string } {
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = '0' + forge.util.bytesToHex(forge.random.getBytesSync(8));
  cert.validity.notBefore = opts.notBefore ?? new Date(Date.now() - 60_000);
  cert.validity.notAfter = opts.notAfter ?? new Date(Date.now() + 365 * 24 * 3600_000);
  const subject = [{ type: '0.9.2342.19200300.100.1.1', value: topic }, { name: 'commonName', value: `APSP:${topic}` }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { certificate: forge.pki.certificateToPem(cert), privateKey: forge.pki.privateKeyToPem(keys.privateKey) };
}
