// Mdm-Signature verification: detached CMS SignedData over the exact request body (apple-protocol-notes §7).
// Only devices sign; the simulator's signer is simulator/signing.ts.
//
// Verification runs on every device request, so it avoids full CMS libraries (pkijs costs ~8 ms per
// message, SPEC §2): node-forge's asn1.fromDer gives the structure, node:crypto checks the signature,
// and certificates that already chained to the CA are remembered by their DER bytes.

import crypto from 'node:crypto';
import forge from 'node-forge';
import { SignatureError } from './identity-common.js';
import {
  bytesOf,
  certificateRanges,
  children,
  commonNameOf,
  decodeBase64,
  fail,
  findSignerCert,
  isContext,
  isUniversal,
  oidOf,
  parseDer,
  pemOrBase64ToDer,
  tbsFields,
  timeOf,
  toDer,
} from './signature-der.js';

export { SignatureError } from './identity-common.js';

const asn1 = forge.asn1;

export interface VerifiedSigner {
  certDer: Buffer;
  /** sha256 hex of certDer */
  fingerprint: string;
  subjectCN: string;
  notAfter: Date;
}

export interface MdmSignatureVerifier {
  verifyMdmSignature(signatureB64: string | undefined, body: Buffer): VerifiedSigner;
  verifyClientCertificateHeader(headerValue: string | undefined): VerifiedSigner;
}

const OID = {
  signedData: '1.2.840.113549.1.7.2',
  data: '1.2.840.113549.1.7.1',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
} as const;

const DIGEST_BY_OID: Record<string, string> = {
  '1.3.14.3.2.26': 'sha1',
  '2.16.840.1.101.3.4.2.4': 'sha224',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

// Signature algorithm OID -> the hash it implies, or null when CMS says "use the digestAlgorithm"
// (rsaEncryption and id-ecPublicKey are what most CMS producers, Apple's included, put there).
const SIGNATURE_ALGORITHMS: Record<string, { hash: string | null }> = {
  '1.2.840.113549.1.1.1': { hash: null },
  '1.2.840.113549.1.1.5': { hash: 'sha1' },
  '1.2.840.113549.1.1.14': { hash: 'sha224' },
  '1.2.840.113549.1.1.11': { hash: 'sha256' },
  '1.2.840.113549.1.1.12': { hash: 'sha384' },
  '1.2.840.113549.1.1.13': { hash: 'sha512' },
  '1.2.840.10045.2.1': { hash: null },
  '1.2.840.10045.4.1': { hash: 'sha1' },
  '1.2.840.10045.4.3.1': { hash: 'sha224' },
  '1.2.840.10045.4.3.2': { hash: 'sha256' },
  '1.2.840.10045.4.3.3': { hash: 'sha384' },
  '1.2.840.10045.4.3.4': { hash: 'sha512' },
};

interface TrustedCert {
  certDer: Buffer;
  fingerprint: string;
  subjectCN: string;
  notBefore: Date;
  notAfter: Date;
  publicKey: crypto.KeyObject;
}


export function createSignatureVerifier(caCertPem: string, opts?: { cacheSize?: number }): MdmSignatureVerifier {
  let caCert: crypto.X509Certificate;
  try {
    caCert = new crypto.X509Certificate(caCertPem);
  } catch (e) {
    throw new SignatureError(`CA certificate for signature verification is not a PEM certificate: ${(e as Error).message}`);
  }
  const caPublicKey = caCert.publicKey;
  const cacheSize = Math.max(1, opts?.cacheSize ?? 4096);
  // Keyed by the certificate's full DER (as a latin1 string): a hit is the very certificate that
  // chained before, so only its validity window needs rechecking.
  const trusted = new Map<string, TrustedCert>();

  function chainCheck(derKey: string): TrustedCert {
    const certDer = Buffer.from(derKey, 'latin1');
    let x509: crypto.X509Certificate;
    try {
      x509 = new crypto.X509Certificate(certDer);
    } catch (e) {
      fail(`signer certificate cannot be parsed: ${(e as Error).message}`);
    }
    if (!x509.checkIssued(caCert) || !x509.verify(caPublicKey)) {
      fail(`signer certificate (subject "${x509.subject.replace(/\n/g, ', ')}") was not issued by this server's CA`);
    }
    if (x509.ca) fail('signer certificate is a CA certificate, not a device identity');
    const fields = tbsFields(parseDer(derKey, 'signer certificate'));
    const validity = children(fields[3]!, 'validity');
    const entry: TrustedCert = {
      certDer,
      fingerprint: crypto.createHash('sha256').update(certDer).digest('hex'),
      subjectCN: commonNameOf(fields[4]!),
      notBefore: timeOf(validity[0]!),
      notAfter: timeOf(validity[1]!),
      publicKey: x509.publicKey,
    };
    if (trusted.size >= cacheSize) trusted.delete(trusted.keys().next().value as string);
    trusted.set(derKey, entry);
    return entry;
  }

  function trustedCert(derKey: string): TrustedCert {
    let entry = trusted.get(derKey);
    if (entry) {
      // Re-insert so the map's insertion order tracks recency (LRU eviction from the front).
      trusted.delete(derKey);
      trusted.set(derKey, entry);
    } else {
      entry = chainCheck(derKey);
    }
    const now = Date.now();
    if (now < entry.notBefore.getTime()) fail(`signer certificate is not valid before ${entry.notBefore.toISOString()}`);
    if (now > entry.notAfter.getTime()) fail(`signer certificate expired at ${entry.notAfter.toISOString()}`);
    return entry;
  }

  function result(entry: TrustedCert): VerifiedSigner {
    return { certDer: entry.certDer, fingerprint: entry.fingerprint, subjectCN: entry.subjectCN, notAfter: entry.notAfter };
  }

  return {
    verifyMdmSignature(signatureB64, body) {
      if (signatureB64 === undefined || signatureB64.trim() === '') fail('missing Mdm-Signature header');
      const der = decodeBase64(signatureB64) ?? fail('Mdm-Signature header is not base64');
      const contentInfo = parseDer(der.toString('latin1'), 'Mdm-Signature');

      // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT SignedData }
      if (!isUniversal(contentInfo, asn1.Type.SEQUENCE)) fail('Mdm-Signature is not CMS: no ContentInfo');
      const [contentType, explicit] = children(contentInfo, 'ContentInfo');
      if (oidOf(contentType, 'contentType') !== OID.signedData) fail('Mdm-Signature is CMS but not SignedData');
      if (!isContext(explicit, 0)) fail('Mdm-Signature is not CMS SignedData: content is missing');
      const signedData = children(explicit, 'content')[0];
      if (!isUniversal(signedData, asn1.Type.SEQUENCE)) fail('Mdm-Signature is not CMS SignedData: SignedData is not a SEQUENCE');

      // SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo,
      //   certificates [0] IMPLICIT?, crls [1] IMPLICIT?, signerInfos SET }
      const sd = children(signedData, 'SignedData');
      const encap = sd[2];
      if (!isUniversal(encap, asn1.Type.SEQUENCE)) fail('Mdm-Signature is not CMS SignedData: no encapContentInfo');
      const eContentType = oidOf(children(encap, 'encapContentInfo')[0], 'eContentType');
      const certSet = sd.find((n, i) => i > 2 && isContext(n, 0));
      // Other CertificateChoices (attribute certificates...) are context-tagged; only X.509 can sign.
      const certs = certSet ? children(certSet, 'certificates').filter((c) => isUniversal(c, asn1.Type.SEQUENCE)) : [];
      const signerInfos = sd[sd.length - 1];
      if (!isUniversal(signerInfos, asn1.Type.SET)) fail('Mdm-Signature is not CMS SignedData: no signerInfos');
      const signers = children(signerInfos, 'signerInfos');
      if (signers.length !== 1) fail(`Mdm-Signature has ${signers.length} signers; expected exactly one`);

      // SignerInfo ::= SEQUENCE { version, sid, digestAlgorithm, signedAttrs [0] IMPLICIT?,
      //   signatureAlgorithm, signature OCTET STRING, unsignedAttrs [1]? }
      const si = children(signers[0]!, 'SignerInfo');
      const [, sid, digestAlgId] = si;
      let idx = 3;
      const signedAttrs = isContext(si[idx], 0) ? si[idx++] : undefined;
      const sigAlgId = si[idx++];
      const signatureNode = si[idx];
      if (!sid || !isUniversal(digestAlgId, asn1.Type.SEQUENCE) || !isUniversal(sigAlgId, asn1.Type.SEQUENCE) || !isUniversal(signatureNode, asn1.Type.OCTETSTRING)) {
        fail('Mdm-Signature is not CMS SignedData: SignerInfo is malformed');
      }

      const digestOid = oidOf(children(digestAlgId, 'digestAlgorithm')[0], 'digestAlgorithm');
      const digestName = DIGEST_BY_OID[digestOid] ?? fail(`Mdm-Signature uses unsupported digest algorithm ${digestOid}`);
      const sigOid = oidOf(children(sigAlgId, 'signatureAlgorithm')[0], 'signatureAlgorithm');
      const sigAlg = SIGNATURE_ALGORITHMS[sigOid] ?? fail(`Mdm-Signature uses unsupported signature algorithm ${sigOid}`);

      if (certs.length === 0) fail('Mdm-Signature carries no signer certificate');
      const signerCert = findSignerCert(sid, certs) ?? fail('Mdm-Signature carries no certificate matching its signer');
      const ranges = certificateRanges(der);
      const range = ranges?.length === certs.length ? ranges[certs.indexOf(signerCert)] : undefined;
      const entry = trustedCert(range ? der.toString('latin1', range[0], range[1]) : toDer(signerCert));

      const bodyDigest = crypto.createHash(digestName).update(body).digest();
      let signedBytes: Uint8Array;
      if (signedAttrs) {
        let messageDigest: string | undefined;
        let attrContentType: string | undefined;
        for (const attr of children(signedAttrs, 'signedAttrs')) {
          const [type, values] = children(attr, 'attribute');
          const attrOid = oidOf(type, 'attribute type');
          if (attrOid !== OID.messageDigest && attrOid !== OID.contentType) continue;
          const vals = values ? children(values, 'attribute values') : [];
          if (vals.length !== 1) fail(`Mdm-Signature ${attrOid === OID.messageDigest ? 'messageDigest' : 'contentType'} attribute must have exactly one value`);
          if (attrOid === OID.messageDigest) {
            if (messageDigest !== undefined) fail('Mdm-Signature has more than one messageDigest attribute');
            messageDigest = bytesOf(vals[0]!, 'messageDigest');
          } else {
            if (attrContentType !== undefined) fail('Mdm-Signature has more than one contentType attribute');
            attrContentType = oidOf(vals[0], 'contentType attribute');
          }
        }
        if (messageDigest === undefined) fail('Mdm-Signature signed attributes lack messageDigest');
        if (attrContentType !== undefined && attrContentType !== eContentType) {
          fail('Mdm-Signature contentType attribute does not match the encapsulated content type');
        }
        if (!bodyDigest.equals(Buffer.from(messageDigest, 'latin1'))) {
          fail('Mdm-Signature digest does not match the request body (body altered or signed over other bytes)');
        }
        // The signature covers the DER of the attributes as SET OF, not the [0] IMPLICIT form sent.
        signedBytes = Buffer.from(toDer(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SET, true, children(signedAttrs, 'signedAttrs'))), 'latin1');
      } else {
        if (eContentType !== OID.data) fail('Mdm-Signature without signed attributes must be over id-data content');
        signedBytes = body;
      }

      const signature = Buffer.from(bytesOf(signatureNode, 'signature'), 'latin1');
      let ok = false;
      try {
        ok = crypto.verify(sigAlg.hash ?? digestName, signedBytes, entry.publicKey, signature);
      } catch {
        ok = false;
      }
      if (!ok) {
        fail(signedAttrs ? 'Mdm-Signature signature over the signed attributes does not verify with the signer certificate' : 'Mdm-Signature signature over the body does not verify with the signer certificate');
      }
      return result(entry);
    },

    verifyClientCertificateHeader(headerValue) {
      if (headerValue === undefined || headerValue.trim() === '') fail('missing client certificate header');
      const value = headerValue.trim();
      let der: Buffer;
      if (value.length > 2 && value.startsWith(':') && value.endsWith(':')) {
        // RFC 9440 Client-Cert: a Structured Field Byte Sequence of the DER certificate.
        der = decodeBase64(value.slice(1, -1)) ?? fail('client certificate header :base64: value is not base64');
      } else {
        let decoded: string;
        try {
          decoded = decodeURIComponent(value);
        } catch {
          fail('client certificate header is not valid URL-escaped PEM');
        }
        der = pemOrBase64ToDer(decoded);
      }
      return result(trustedCert(der.toString('latin1')));
    },
  };
}
