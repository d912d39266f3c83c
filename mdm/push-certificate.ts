// The APNs push certificate: parsing the admin's upload, and a sandbox stand-in (apple-protocol-notes §6).

// Must precede @peculiar/x509: tsyringe, which it loads, refuses to start without the Reflect polyfill.
import 'reflect-metadata';
import crypto from 'node:crypto';
import * as x509 from '@peculiar/x509';
import forge from 'node-forge';
import { BACKDATE_MS, DAY_MS, IdentityError, RSA_ALGORITHM, generateRsaKeyPair, privateKeyPem, webcrypto, type CertifiedKey } from './identity-common.js';

const UID_OID = '0.9.2342.19200300.100.1.1';
const PUSH_TOPIC_PREFIX = 'com.apple.mgmt.';

interface PushMaterial {
  certs: crypto.X509Certificate[];
  key: crypto.KeyObject;
}

function fromPkcs12(pkcs12: string, password: string): PushMaterial {
  const b64 = pkcs12.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new IdentityError('pkcs12 is not base64');
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    const der = forge.asn1.fromDer(Buffer.from(b64, 'base64').toString('latin1'));
    p12 = forge.pkcs12.pkcs12FromAsn1(der, false, password);
  } catch (e) {
    const message = (e as Error).message ?? String(e);
    if (/MAC could not be verified|wrong password|Invalid password/i.test(message)) {
      throw new IdentityError('pkcs12 could not be opened: wrong password');
    }
    throw new IdentityError(`pkcs12 is not a readable PKCS#12 file: ${message}`);
  }
  const certs: crypto.X509Certificate[] = [];
  let key: crypto.KeyObject | undefined;
  for (const safe of p12.safeContents) {
    for (const bag of safe.safeBags) {
      try {
        if (bag.type === forge.pki.oids.certBag) {
          // forge only materialises RSA certificates; others stay as ASN.1.
          const der = bag.cert ? forge.asn1.toDer(forge.pki.certificateToAsn1(bag.cert)) : forge.asn1.toDer(bag.asn1);
          certs.push(new crypto.X509Certificate(Buffer.from(der.getBytes(), 'latin1')));
        } else if (bag.type === forge.pki.oids.keyBag || bag.type === forge.pki.oids.pkcs8ShroudedKeyBag) {
          key ??= bag.key
            ? crypto.createPrivateKey(forge.pki.privateKeyToPem(bag.key))
            : crypto.createPrivateKey({ key: Buffer.from(forge.asn1.toDer(bag.asn1).getBytes(), 'latin1'), format: 'der', type: 'pkcs8' });
        }
      } catch (e) {
        throw new IdentityError(`pkcs12 holds an unreadable ${bag.type === forge.pki.oids.certBag ? 'certificate' : 'key'}: ${(e as Error).message}`);
      }
    }
  }
  if (certs.length === 0) throw new IdentityError('pkcs12 holds no certificate');
  if (!key) throw new IdentityError('pkcs12 holds no private key');
  return { certs, key };
}

function fromPem(certificate: string, privateKey: string | undefined, password: string | undefined): PushMaterial {
  const blocks = certificate.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (!blocks) throw new IdentityError('certificate is not a PEM certificate (no BEGIN CERTIFICATE block)');
  const certs = blocks.map((block) => {
    try {
      return new crypto.X509Certificate(block);
    } catch (e) {
      throw new IdentityError(`certificate PEM cannot be parsed: ${(e as Error).message}`);
    }
  });
  // Admins often paste one PEM file holding both the certificate and its key.
  const keyText = privateKey?.trim() ? privateKey : /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/.exec(certificate)?.[0];
  if (!keyText) throw new IdentityError('privateKey is required with a PEM certificate');
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey(password ? { key: keyText, passphrase: password } : keyText);
  } catch (e) {
    throw new IdentityError(`privateKey is not a usable PEM private key (encrypted keys need the password): ${(e as Error).message}`);
  }
  return { certs, key };
}

/**
 * Push certificate uploaded by the admin: PEM cert + PEM key, or base64 PKCS#12 + password.
 * The topic is the subject UID (apple-protocol-notes §6). An expired certificate is returned as is;
 * callers show notAfter and decide.
 */
export function parsePushCertificate(input: { certificate?: string; privateKey?: string; pkcs12?: string; password?: string }): {
  certPem: string;
  keyPem: string;
  topic: string;
  notAfter: Date;
  notBefore: Date;
} {
  const hasP12 = typeof input?.pkcs12 === 'string' && input.pkcs12.trim() !== '';
  const hasPem = typeof input?.certificate === 'string' && input.certificate.trim() !== '';
  if (hasP12 && hasPem) throw new IdentityError('give either pkcs12 or certificate (+ privateKey), not both');
  if (!hasP12 && !hasPem) throw new IdentityError('push certificate missing: give certificate + privateKey (PEM) or pkcs12 (base64) + password');
  const { certs, key } = hasP12 ? fromPkcs12(input.pkcs12!, input.password ?? '') : fromPem(input.certificate!, input.privateKey, input.password);

  // A bundle may include Apple's intermediates; the push certificate is the one the key belongs to.
  const cert = certs.find((c) => c.checkPrivateKey(key));
  if (!cert) throw new IdentityError('private key does not match the push certificate');

  const parsed = new x509.X509Certificate(cert.raw);
  const topic = parsed.subjectName.getField(UID_OID)[0];
  if (!topic) throw new IdentityError(`push certificate subject "${parsed.subject}" has no UID attribute (${UID_OID}); is it an MDM push certificate?`);
  if (!topic.startsWith(PUSH_TOPIC_PREFIX)) {
    throw new IdentityError(`push certificate topic "${topic}" does not start with ${PUSH_TOPIC_PREFIX}; is it an MDM push certificate?`);
  }
  return {
    certPem: `-----BEGIN CERTIFICATE-----\n${cert.raw.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`,
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }) as string,
    topic,
    notAfter: parsed.notAfter,
    notBefore: parsed.notBefore,
  };
}

/** Self-signed stand-in for Apple's MDM push certificate (--sandbox and tests), shaped like the real one. */
export async function generateSandboxPushCertificate(): Promise<CertifiedKey & { topic: string }> {
  const uuid = crypto.randomUUID();
  const topic = `${PUSH_TOPIC_PREFIX}External.${uuid}`;
  const keys = await generateRsaKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: [{ [UID_OID]: [topic] }, { CN: [`APSP:${uuid}`] }, { C: ['US'] }],
      keys,
      signingAlgorithm: RSA_ALGORITHM,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + 365 * DAY_MS),
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return { certPem: cert.toString('pem'), keyPem: privateKeyPem(keys.privateKey), topic };
}
