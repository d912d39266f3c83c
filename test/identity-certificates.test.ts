// The server CA, device identities (the enrollment PKCS#12) and the APNs push certificate, checked by
// node:crypto and by openssl.
import 'reflect-metadata';
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import forge from 'node-forge';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createServerCA,
  generateSandboxPushCertificate,
  IdentityError,
  issueDeviceIdentity,
  parsePushCertificate,
  type CertifiedKey,
} from '../mdm/identity.js';
import { parsePushCertificate as parsePushCertificateDirect } from '../mdm/push-certificate.js';
import {
  ca,
  derOf,
  device,
  expectIdentityError,
  expiredDevice,
  foreignDevice,
  openssl,
  otherCa,
  tmp,
  useIdentityFixtures,
  webcrypto,
} from './support/identities.js';

useIdentityFixtures();

describe('createServerCA', () => {
  it('creates a 10-year RSA 2048 SHA-256 CA certificate that can sign certificates', () => {
    const cert = new crypto.X509Certificate(ca.certPem);
    const parsed = new x509.X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=Test MDM CA');
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(crypto.createPrivateKey(ca.keyPem))).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe('rsa');
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect((parsed.signatureAlgorithm as RsaHashedKeyAlgorithm & { hash: { name: string } }).hash.name).toBe('SHA-256');
    const years = (parsed.notAfter.getTime() - Date.now()) / (365.25 * 86_400_000);
    expect(years).toBeGreaterThan(9.9);
    expect(years).toBeLessThan(10.1);
    expect(parsed.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(true);
    const usages = parsed.getExtension(x509.KeyUsagesExtension)?.usages ?? 0;
    expect(usages & x509.KeyUsageFlags.keyCertSign).toBeTruthy();
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it('uses a default name and rejects an empty one', async () => {
    expect(new crypto.X509Certificate((await createServerCA()).certPem).subject).toMatch(/^CN=.+/);
    await expect(createServerCA('  ')).rejects.toBeInstanceOf(IdentityError);
  });
});

describe('issueDeviceIdentity', () => {
  it('issues a client-auth certificate chaining to the CA', () => {
    const cert = new crypto.X509Certificate(device.certPem);
    const caCert = new crypto.X509Certificate(ca.certPem);
    expect(cert.subject).toBe('CN=enrollment-1');
    expect(cert.ca).toBe(false);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(crypto.createPrivateKey(device.keyPem))).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(cert.keyUsage).toContain('1.3.6.1.5.5.7.3.2');
    const parsed = new x509.X509Certificate(device.certPem);
    expect(parsed.getExtension(x509.KeyUsagesExtension)?.usages).toBe(x509.KeyUsageFlags.digitalSignature);
    expect(parsed.notAfter.getTime()).toBeGreaterThan(Date.now() + 300 * 86_400_000);
    expect(new crypto.X509Certificate(foreignDevice.certPem).verify(caCert.publicKey)).toBe(false);
  });

  it('packs key, certificate and CA into a PKCS#12 that opens with its password', () => {
    expect(device.password.length).toBeGreaterThanOrEqual(16);
    const p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(device.pkcs12.toString('latin1')), false, device.password);
    const certBags = p12.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag] ?? [];
    const keyBags = p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag] ?? [];
    expect(keyBags).toHaveLength(1);
    const certsPem = certBags.map((b) => forge.pki.certificateToPem(b.cert!));
    expect(certsPem.map(derOf)).toEqual(expect.arrayContaining([derOf(device.certPem), derOf(ca.certPem)]));
    const leaf = new crypto.X509Certificate(certsPem.find((pem) => derOf(pem).equals(derOf(device.certPem)))!);
    expect(leaf.verify(new crypto.X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(leaf.checkPrivateKey(crypto.createPrivateKey(forge.pki.privateKeyToPem(keyBags[0]!.key!)))).toBe(true);
    expect(() => forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(device.pkcs12.toString('latin1')), false, 'wrong password')).toThrow();
  });

  it('uses 3DES and a SHA-1 MAC in the PKCS#12 (what every iOS version reads)', async () => {
    await fs.writeFile(path.join(tmp, 'device.p12'), device.pkcs12);
    await fs.writeFile(path.join(tmp, 'device.pw'), device.password);
    const { stdout, stderr } = await openssl(['pkcs12', '-in', 'device.p12', '-passin', 'file:device.pw', '-info', '-noout']);
    const info = stdout + stderr;
    expect(info).toMatch(/MAC: sha1/);
    expect(info).toMatch(/Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC/);
    // The certificates come out byte for byte as issued (forge re-encodes them when packing).
    const { stdout: certs } = await openssl(['pkcs12', '-in', 'device.p12', '-passin', 'file:device.pw', '-nokeys']);
    const blocks = certs.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    expect(blocks.map((b) => derOf(b).toString('hex')).sort()).toEqual([derOf(device.certPem), derOf(ca.certPem)].map((d) => d.toString('hex')).sort());
  });

  it('can issue an already expired certificate and rejects bad CA input', async () => {
    expect(new x509.X509Certificate(expiredDevice.certPem).notAfter.getTime()).toBeLessThan(Date.now());
    await expect(issueDeviceIdentity(ca, { commonName: '' })).rejects.toThrow(/commonName/);
    await expect(issueDeviceIdentity({ certPem: 'nope', keyPem: ca.keyPem }, { commonName: 'x' })).rejects.toThrow(/CA certPem/);
    await expect(issueDeviceIdentity({ certPem: ca.certPem, keyPem: otherCa.keyPem }, { commonName: 'x' })).rejects.toThrow(/does not match/);
    await expect(issueDeviceIdentity({ certPem: device.certPem, keyPem: device.keyPem }, { commonName: 'x' })).rejects.toThrow(/not a CA/);
  });
});

describe('push certificate', () => {
  let push: CertifiedKey & { topic: string };

  beforeAll(async () => {
    push = await generateSandboxPushCertificate();
  });

  it('generates a sandbox certificate shaped like Apple’s', () => {
    expect(push.topic).toMatch(/^com\.apple\.mgmt\.External\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const parsed = new x509.X509Certificate(push.certPem);
    expect(parsed.subjectName.getField('0.9.2342.19200300.100.1.1')).toEqual([push.topic]);
    const cert = new crypto.X509Certificate(push.certPem);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.checkPrivateKey(crypto.createPrivateKey(push.keyPem))).toBe(true);
    expect(cert.keyUsage).toContain('1.3.6.1.5.5.7.3.2');
  });

  it('parses PEM certificate + key', () => {
    const parsed = parsePushCertificate({ certificate: push.certPem, privateKey: push.keyPem });
    expect(parsed.topic).toBe(push.topic);
    expect(derOf(parsed.certPem).equals(derOf(push.certPem))).toBe(true);
    expect(new crypto.X509Certificate(parsed.certPem).checkPrivateKey(crypto.createPrivateKey(parsed.keyPem))).toBe(true);
    expect(parsed.notBefore.getTime()).toBeLessThan(Date.now());
    expect(parsed.notAfter.getTime()).toBeGreaterThan(Date.now() + 300 * 86_400_000);
    // One pasted file holding both, and a key in PKCS#1 form.
    const pkcs1 = crypto.createPrivateKey(push.keyPem).export({ type: 'pkcs1', format: 'pem' }) as string;
    expect(parsePushCertificate({ certificate: push.certPem + pkcs1 }).topic).toBe(push.topic);
    expect(parsePushCertificateDirect({ certificate: push.certPem, privateKey: pkcs1 }).topic).toBe(push.topic);
  });

  it('parses PKCS#12: forge 3DES and openssl 3 default (AES/PBKDF2)', async () => {
    const forgeP12 = forge.pkcs12.toPkcs12Asn1(forge.pki.privateKeyFromPem(push.keyPem), [forge.pki.certificateFromPem(push.certPem)], 's3cret', { algorithm: '3des' });
    const b64 = Buffer.from(forge.asn1.toDer(forgeP12).getBytes(), 'latin1').toString('base64');
    expect(parsePushCertificate({ pkcs12: b64, password: 's3cret' }).topic).toBe(push.topic);
    expectIdentityError(() => parsePushCertificate({ pkcs12: b64, password: 'wrong' }), /wrong password/);

    await fs.writeFile(path.join(tmp, 'push.pem'), push.certPem);
    await fs.writeFile(path.join(tmp, 'push.key'), push.keyPem);
    // The CA certificate rides along too, as in exports that include the chain.
    await openssl(['pkcs12', '-export', '-in', 'push.pem', '-inkey', 'push.key', '-certfile', 'ca.pem', '-passout', 'pass:pw', '-out', 'push.p12']);
    const opensslB64 = (await fs.readFile(path.join(tmp, 'push.p12'))).toString('base64');
    const parsed = parsePushCertificate({ pkcs12: opensslB64, password: 'pw' });
    expect(parsed.topic).toBe(push.topic);
    expect(derOf(parsed.certPem).equals(derOf(push.certPem))).toBe(true);
  });

  it('rejects a key that does not belong to the certificate', async () => {
    const other = await generateSandboxPushCertificate();
    expectIdentityError(() => parsePushCertificate({ certificate: push.certPem, privateKey: other.keyPem }), /private key does not match/);
    const mixed = forge.pkcs12.toPkcs12Asn1(forge.pki.privateKeyFromPem(other.keyPem), [forge.pki.certificateFromPem(push.certPem)], 'pw', { algorithm: '3des' });
    const b64 = Buffer.from(forge.asn1.toDer(mixed).getBytes(), 'latin1').toString('base64');
    expectIdentityError(() => parsePushCertificate({ pkcs12: b64, password: 'pw' }), /private key does not match/);
  });

  it('rejects certificates without a com.apple.mgmt UID topic', async () => {
    expectIdentityError(() => parsePushCertificate({ certificate: device.certPem, privateKey: device.keyPem }), /no UID attribute/);
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
    const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const appPush = await x509.X509CertificateGenerator.createSelfSigned(
      { name: [{ '0.9.2342.19200300.100.1.1': ['com.example.app'] }, { CN: ['Apple Push Services: com.example.app'] }], keys, signingAlgorithm: alg },
      webcrypto,
    );
    const keyPem = crypto.KeyObject.from(keys.privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
    expectIdentityError(() => parsePushCertificate({ certificate: appPush.toString('pem'), privateKey: keyPem }), /does not start with com\.apple\.mgmt\./);
  });

  it('rejects garbage and incomplete input with a message naming the field', () => {
    expectIdentityError(() => parsePushCertificate({}), /push certificate missing/);
    expectIdentityError(() => parsePushCertificate({ certificate: 'hello', privateKey: push.keyPem }), /certificate is not a PEM certificate/);
    expectIdentityError(
      () => parsePushCertificate({ certificate: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', privateKey: push.keyPem }),
      /certificate PEM cannot be parsed/,
    );
    expectIdentityError(() => parsePushCertificate({ certificate: push.certPem }), /privateKey is required/);
    expectIdentityError(() => parsePushCertificate({ certificate: push.certPem, privateKey: 'garbage' }), /privateKey is not a usable PEM private key/);
    expectIdentityError(() => parsePushCertificate({ pkcs12: '%%% not base64 %%%', password: 'x' }), /pkcs12 is not base64/);
    expectIdentityError(() => parsePushCertificate({ pkcs12: crypto.randomBytes(64).toString('base64'), password: 'x' }), /pkcs12 is not a readable PKCS#12/);
    expectIdentityError(() => parsePushCertificate({ pkcs12: 'AAAA', certificate: push.certPem, privateKey: push.keyPem }), /not both/);
  });
});
