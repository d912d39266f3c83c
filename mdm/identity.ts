// Server CA and device identities (the enrollment PKCS#12). Mdm-Signature verification lives in
// ./signature.ts and the APNs push certificate in ./push-certificate.ts; both are re-exported here
// so callers can import the whole identity API from one module.

// Must precede @peculiar/x509: tsyringe, which it loads, refuses to start without the Reflect polyfill.
import 'reflect-metadata';
import crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import forge from 'node-forge';
import { BACKDATE_MS, DAY_MS, IdentityError, RSA_ALGORITHM, generateRsaKeyPair, privateKeyPem, webcrypto, type CertifiedKey } from './identity-common.js';

export { IdentityError, SignatureError, type CertifiedKey } from './identity-common.js';
export { createSignatureVerifier, type VerifiedSigner, type MdmSignatureVerifier } from './signature.js';
export { parsePushCertificate, generateSandboxPushCertificate } from './push-certificate.js';

const DEFAULT_DEVICE_VALID_DAYS = 730;

/** Server CA, created once on first start: RSA 2048, SHA-256, 10 years, CA with keyCertSign. */
export async function createServerCA(commonName = 'MDM Server CA'): Promise<CertifiedKey> {
  if (typeof commonName !== 'string' || commonName.trim() === '') throw new IdentityError('CA commonName must be a non-empty string');
  const keys = await generateRsaKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: [{ CN: [commonName] }],
      keys,
      signingAlgorithm: RSA_ALGORITHM,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + 3652 * DAY_MS),
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return { certPem: cert.toString('pem'), keyPem: privateKeyPem(keys.privateKey) };
}

interface LoadedCA {
  cert: x509.X509Certificate;
  signingKey: CryptoKey;
}

async function loadCA(ca: CertifiedKey): Promise<LoadedCA> {
  let nodeCert: crypto.X509Certificate;
  let nodeKey: crypto.KeyObject;
  try {
    nodeCert = new crypto.X509Certificate(ca.certPem);
  } catch (e) {
    throw new IdentityError(`CA certPem is not a PEM certificate: ${(e as Error).message}`);
  }
  try {
    nodeKey = crypto.createPrivateKey(ca.keyPem);
  } catch (e) {
    throw new IdentityError(`CA keyPem is not a PEM private key: ${(e as Error).message}`);
  }
  if (!nodeCert.ca) throw new IdentityError('CA certPem is not a CA certificate (basicConstraints CA is false)');
  if (!nodeCert.checkPrivateKey(nodeKey)) throw new IdentityError('CA keyPem does not match the CA certificate');
  if (nodeKey.asymmetricKeyType !== 'rsa') throw new IdentityError(`CA key is ${nodeKey.asymmetricKeyType}; the server CA must be RSA`);
  const signingKey = await webcrypto.subtle.importKey(
    'pkcs8',
    nodeKey.export({ type: 'pkcs8', format: 'der' }),
    { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  return { cert: new x509.X509Certificate(nodeCert.raw), signingKey };
}

/**
 * Device identity for one enrollment, signed by the CA, packaged as the PKCS#12 the
 * com.apple.security.pkcs12 payload carries. Negative validDays yields an already expired certificate (tests).
 */
export async function issueDeviceIdentity(
  ca: CertifiedKey,
  opts: { commonName: string; validDays?: number },
): Promise<{ pkcs12: Buffer; password: string; certPem: string; keyPem: string }> {
  if (typeof opts?.commonName !== 'string' || opts.commonName.trim() === '') {
    throw new IdentityError('device identity commonName must be a non-empty string');
  }
  const validDays = opts.validDays ?? DEFAULT_DEVICE_VALID_DAYS;
  if (!Number.isFinite(validDays) || validDays === 0) throw new IdentityError(`validDays must be a non-zero number, got ${validDays}`);
  const { cert: caCert, signingKey } = await loadCA(ca);
  const keys = await generateRsaKeyPair();

  const now = Date.now();
  const notAfter = new Date(now + validDays * DAY_MS);
  const notBefore = new Date(Math.min(now - BACKDATE_MS, notAfter.getTime() - DAY_MS));
  const caKeyId = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const cert = await x509.X509CertificateGenerator.create(
    {
      // The CA's own encoded Name, so issuer bytes equal the CA subject bytes exactly (chain matching is byte-wise).
      issuer: caCert.subjectName,
      subject: [{ CN: [opts.commonName] }],
      publicKey: keys.publicKey,
      signingKey,
      signingAlgorithm: RSA_ALGORITHM,
      notBefore,
      notAfter,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
        caKeyId
          ? new x509.AuthorityKeyIdentifierExtension(caKeyId)
          : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );

  const certPem = cert.toString('pem');
  const keyPem = privateKeyPem(keys.privateKey);
  const password = crypto.randomBytes(18).toString('base64url');
  // 3DES key bag with a SHA-1 MAC: the PKCS#12 flavour every iOS version opens (AES/PBES2 is refused by older ones).
  const p12 = forge.pkcs12.toPkcs12Asn1(
    forge.pki.privateKeyFromPem(keyPem),
    [forge.pki.certificateFromPem(certPem), forge.pki.certificateFromPem(caCert.toString('pem'))],
    password,
    { algorithm: '3des', friendlyName: opts.commonName },
  );
  const pkcs12 = Buffer.from(forge.asn1.toDer(p12).getBytes(), 'latin1');
  return { pkcs12, password, certPem, keyPem };
}
