// Mdm-Signature as a device makes it: detached CMS SignedData over the exact request body
// (apple-protocol-notes §7). Only simulated devices and tests sign; the server verifies in mdm/signature.ts.
import crypto from 'node:crypto';
import forge from 'node-forge';
import { SignatureError, type CertifiedKey } from '../mdm/identity.js';

// DigestInfo prefixes (RFC 8017 §9.2 note 1): with them a raw PKCS#1 v1.5 private operation in
// node:crypto replaces forge's pure-JS RSA, which is ~10x slower and would throttle the simulator.
const DIGEST_INFO_PREFIX: Record<string, Buffer> = {
  sha1: Buffer.from('3021300906052b0e03021a05000414', 'hex'),
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

interface SigningMaterial {
  cert: forge.pki.Certificate;
  forgeKey: { sign(md: forge.md.MessageDigest, scheme?: string): string };
}

const SIGNER_CACHE_SIZE = 2048;
const signerCache = new Map<string, SigningMaterial>();

function signingMaterial(identity: CertifiedKey): SigningMaterial {
  const cacheKey = identity.certPem + '\0' + identity.keyPem;
  const hit = signerCache.get(cacheKey);
  if (hit) return hit;
  let cert: forge.pki.Certificate;
  let key: crypto.KeyObject;
  try {
    cert = forge.pki.certificateFromPem(identity.certPem);
  } catch (e) {
    throw new SignatureError(`signing identity certificate is not a PEM RSA certificate: ${(e as Error).message}`);
  }
  try {
    key = crypto.createPrivateKey(identity.keyPem);
  } catch (e) {
    throw new SignatureError(`signing identity private key is not a PEM key: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    throw new SignatureError(`signing identity key is ${key.asymmetricKeyType}; only RSA identities can sign`);
  }
  const forgeKey = {
    sign(md: forge.md.MessageDigest): string {
      const prefix = DIGEST_INFO_PREFIX[md.algorithm];
      if (!prefix) throw new SignatureError(`cannot sign with digest ${md.algorithm}`);
      const digestInfo = Buffer.concat([prefix, Buffer.from(md.digest().getBytes(), 'latin1')]);
      return crypto.privateEncrypt({ key, padding: crypto.constants.RSA_PKCS1_PADDING }, digestInfo).toString('latin1');
    },
  };
  const material = { cert, forgeKey };
  if (signerCache.size >= SIGNER_CACHE_SIZE) signerCache.delete(signerCache.keys().next().value as string);
  signerCache.set(cacheKey, material);
  return material;
}

/**
 * Detached CMS SignedData over `body`, base64, as an iPhone sends in the Mdm-Signature header.
 * `signedAttributes: false` produces the rarer form whose signature covers the body digest directly.
 */
export function signMdmMessage(body: Buffer, identity: CertifiedKey, opts?: { signedAttributes?: boolean }): string {
  const { cert, forgeKey } = signingMaterial(identity);
  const p7 = forge.pkcs7.createSignedData();
  p7.content = forge.util.createBuffer(Buffer.from(body).toString('latin1'));
  p7.addCertificate(cert);
  p7.addSigner({
    key: forgeKey as unknown as forge.pki.rsa.PrivateKey,
    certificate: cert,
    digestAlgorithm: forge.pki.oids.sha256,
    // In DER SET OF order (by encoded length here), so strict DER re-encoders agree with forge.
    authenticatedAttributes:
      opts?.signedAttributes === false
        ? []
        : [
            { type: forge.pki.oids.contentType, value: forge.pki.oids.data },
            { type: forge.pki.oids.signingTime },
            { type: forge.pki.oids.messageDigest },
          ],
  });
  p7.sign({ detached: true });
  return Buffer.from(forge.asn1.toDer(p7.toAsn1()).getBytes(), 'latin1').toString('base64');
}

