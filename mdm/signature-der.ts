// Reading the DER of an Mdm-Signature and its certificates with node-forge's ASN.1 tree: strict parsing,
// typed accessors that fail with a SignatureError naming the broken part, and the few X.509 fields the
// verifier needs (validity, subject CN, subject key identifier, the signer's exact bytes).
import forge from 'node-forge';
import { SignatureError } from './identity-common.js';

const asn1 = forge.asn1;
export type Asn1 = forge.asn1.Asn1;

const OID_COMMON_NAME = '2.5.4.3';
const OID_SUBJECT_KEY_IDENTIFIER = '2.5.29.14';

function expectedDecodedLength(b64: string): number {
  let pad = 0;
  while (pad < 2 && b64.charCodeAt(b64.length - 1 - pad) === 61 /* = */) pad++;
  return b64.length % 4 === 1 ? -1 : Math.floor(((b64.length - pad) * 3) / 4);
}

// Buffer.from(..., 'base64') silently skips characters outside the alphabet, so garbage shows up as a
// shorter result. Checking the length instead of running a regex keeps the hot path cheap.
export function decodeBase64(text: string): Buffer | undefined {
  let buf = Buffer.from(text, 'base64');
  if (buf.length > 0 && buf.length === expectedDecodedLength(text)) return buf;
  const compact = text.replace(/\s+/g, '');
  buf = Buffer.from(compact, 'base64');
  return buf.length > 0 && buf.length === expectedDecodedLength(compact) ? buf : undefined;
}

export function fail(message: string): never {
  throw new SignatureError(message);
}

export function children(node: Asn1, what: string): Asn1[] {
  if (!Array.isArray(node.value)) fail(`Mdm-Signature is not CMS SignedData: ${what} is not constructed`);
  return node.value;
}

export function bytesOf(node: Asn1, what: string): string {
  if (typeof node.value === 'string') return node.value;
  // BER producers may split OCTET STRINGs into constructed chunks.
  if (node.tagClass === asn1.Class.UNIVERSAL && node.type === asn1.Type.OCTETSTRING) {
    return node.value.map((c) => bytesOf(c, what)).join('');
  }
  fail(`Mdm-Signature is not CMS SignedData: ${what} is not a primitive value`);
}

export function isUniversal(node: Asn1 | undefined, type: number): node is Asn1 {
  return node !== undefined && node.tagClass === asn1.Class.UNIVERSAL && node.type === type;
}

export function isContext(node: Asn1 | undefined, tag: number): node is Asn1 {
  return node !== undefined && node.tagClass === asn1.Class.CONTEXT_SPECIFIC && node.type === tag;
}

export function oidOf(node: Asn1 | undefined, what: string): string {
  if (!isUniversal(node, asn1.Type.OID) || typeof node.value !== 'string') {
    fail(`Mdm-Signature is not CMS SignedData: ${what} is not an OID`);
  }
  return asn1.derToOid(node.value);
}

export function parseDer(der: string, what: string): Asn1 {
  try {
    // decodeBitStrings off: nothing here needs BIT STRING contents parsed, and leaving them raw makes
    // toDer() reproduce certificate bytes exactly.
    return asn1.fromDer(der, { strict: true, parseAllBytes: true, decodeBitStrings: false } as unknown as boolean);
  } catch (e) {
    fail(`${what} is not valid DER: ${(e as Error).message}`);
  }
}

export function toDer(node: Asn1): string {
  return asn1.toDer(node).getBytes();
}

// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version?, serialNumber, signature, issuer,
// validity, subject, subjectPublicKeyInfo, ..., [3] extensions? }, ... }
export function tbsFields(cert: Asn1): Asn1[] {
  const tbs = children(cert, 'certificate')[0];
  if (!isUniversal(tbs, asn1.Type.SEQUENCE)) fail('certificate has no tbsCertificate');
  const fields = children(tbs, 'tbsCertificate');
  return isContext(fields[0], 0) ? fields.slice(1) : fields;
}

export function commonNameOf(name: Asn1): string {
  for (const rdn of children(name, 'subject')) {
    for (const atv of children(rdn, 'subject RDN')) {
      const [type, value] = children(atv, 'subject attribute');
      if (value && typeof value.value === 'string' && oidOf(type, 'attribute type') === OID_COMMON_NAME) {
        return value.type === asn1.Type.UTF8 ? forge.util.decodeUtf8(value.value) : value.value;
      }
    }
  }
  return '';
}

export function timeOf(node: Asn1): Date {
  if (typeof node.value !== 'string') fail('certificate validity is malformed');
  return node.type === asn1.Type.UTCTIME ? asn1.utcTimeToDate(node.value) : asn1.generalizedTimeToDate(node.value);
}

function subjectKeyIdentifierOf(cert: Asn1): string | undefined {
  const extensions = tbsFields(cert).find((f) => isContext(f, 3));
  if (!extensions) return undefined;
  const list = children(extensions, 'extensions')[0];
  if (!list) return undefined;
  for (const ext of children(list, 'extensions')) {
    const parts = children(ext, 'extension');
    if (oidOf(parts[0], 'extension id') !== OID_SUBJECT_KEY_IDENTIFIER) continue;
    const inner = parseDer(bytesOf(parts[parts.length - 1]!, 'extension value'), 'subjectKeyIdentifier');
    return typeof inner.value === 'string' ? inner.value : undefined;
  }
  return undefined;
}

// SignerIdentifier ::= CHOICE { issuerAndSerialNumber, subjectKeyIdentifier [0] }
export function findSignerCert(sid: Asn1, certs: Asn1[]): Asn1 | undefined {
  if (isUniversal(sid, asn1.Type.SEQUENCE)) {
    const [issuer, serial] = children(sid, 'issuerAndSerialNumber');
    if (!issuer || !serial) fail('Mdm-Signature is not CMS SignedData: issuerAndSerialNumber is incomplete');
    const serialBytes = bytesOf(serial, 'serialNumber');
    let issuerDer: string | undefined;
    for (const cert of certs) {
      const [certSerial, , certIssuer] = tbsFields(cert);
      if (!certSerial || !certIssuer || certSerial.value !== serialBytes) continue;
      issuerDer ??= toDer(issuer);
      if (toDer(certIssuer) === issuerDer) return cert;
    }
    return undefined;
  }
  if (isContext(sid, 0)) {
    const ski = bytesOf(sid, 'subjectKeyIdentifier');
    return certs.find((cert) => subjectKeyIdentifierOf(cert) === ski);
  }
  fail('Mdm-Signature is not CMS SignedData: unknown signer identifier form');
}

// Byte ranges of the X.509 certificates in a ContentInfo, in the order forge lists them, so the signer's
// exact bytes can be sliced out rather than re-encoded (toDer costs ~25 µs per certificate).
// Undefined when a length on the way is indefinite (BER); callers then fall back to toDer.
export function certificateRanges(der: Buffer): Array<[number, number]> | undefined {
  const header = (pos: number): { tag: number; start: number; end: number } | undefined => {
    if (pos + 2 > der.length) return undefined;
    let len = der[pos + 1]!;
    let start = pos + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 4) return undefined;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
      start += n;
    }
    return start + len <= der.length ? { tag: der[pos]!, start, end: start + len } : undefined;
  };
  const contentInfo = header(0);
  const contentType = contentInfo && header(contentInfo.start);
  const explicit = contentType && header(contentType.end);
  const signedData = explicit && header(explicit.start);
  if (!signedData) return undefined;
  let pos = signedData.start;
  for (let i = 0; i < 3; i++) {
    const skip = header(pos);
    if (!skip) return undefined;
    pos = skip.end;
  }
  const certSet = header(pos);
  if (!certSet || certSet.tag !== 0xa0) return undefined;
  const ranges: Array<[number, number]> = [];
  for (pos = certSet.start; pos < certSet.end; ) {
    const cert = header(pos);
    if (!cert) return undefined;
    if (cert.tag === 0x30) ranges.push([pos, cert.end]);
    pos = cert.end;
  }
  return ranges;
}

export function pemOrBase64ToDer(text: string): Buffer {
  const pem = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(text);
  // Some proxies (Traefik) pass bare base64 DER without PEM armour.
  return decodeBase64(pem ? pem[1]! : text) ?? fail('client certificate header is neither RFC 9440 :base64: nor URL-escaped PEM');
}
