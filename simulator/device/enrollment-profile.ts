// The enrollment profile as a device reads it: the com.apple.mdm payload (Topic, ServerURL, CheckInURL,
// SignMessage, AccessRights) and the PKCS#12 identity it points to, opened with the payload's Password.
// Apple: profiles/com.apple.mdm.yaml and profiles/com.apple.security.pkcs12.yaml in mdm/apple-schema.
import { createPrivateKey } from 'node:crypto';
import forge from 'node-forge';
import { parsePlistDict } from '../../mdm/plist.js';
import { mdmUrlProblem } from '../../mdm/profile.js';
import { EnrollmentError, isDict, type Dict } from './types.js';

export interface Enrollment {
  topic: string;
  serverUrl: string;
  checkInUrl: string;
  checkOutWhenRemoved: boolean;
  identity: { certPem: string; keyPem: string };
  profile: ProfileSummary;
  /** The com.apple.mdm payload as installed, without its identity: what an update of it is checked against. */
  mdm: Dict;
}

/** What ProfileList reports about the enrollment profile (the profile itself, with its PKCS#12, is not kept). */
export interface ProfileSummary {
  PayloadUUID: string;
  PayloadIdentifier: string;
  PayloadVersion: number;
  PayloadDisplayName?: string;
  PayloadOrganization?: string;
  PayloadDescription?: string;
  PayloadRemovalDisallowed: boolean;
  payloads: { PayloadType: string; PayloadVersion: number; PayloadIdentifier: string; PayloadUUID: string; PayloadDisplayName?: string }[];
}

/** A configuration profile (the body of GET <enrollment url>, or InstallProfile's Payload), plist or signed. */
export function readProfile(body: Buffer): { profile: Dict; payloads: Dict[] } {
  const plistBytes = unwrapSignedProfile(body);
  let profile: Dict;
  try {
    profile = parsePlistDict(plistBytes);
  } catch (err) {
    throw new EnrollmentError(`profile is not a plist: ${(err as Error).message}`);
  }
  if (profile.PayloadType !== 'Configuration') {
    throw new EnrollmentError(`profile: PayloadType is ${JSON.stringify(profile.PayloadType)}, expected "Configuration"`);
  }
  requiredString(profile, 'PayloadIdentifier', 'profile');
  const content = profile.PayloadContent;
  if (!Array.isArray(content) || !content.every(isDict)) throw new EnrollmentError('profile: PayloadContent is not an array of payloads');
  return { profile, payloads: content as Dict[] };
}

/** What ProfileList says about an installed profile. */
export function profileSummary(profile: Dict, payloads: Dict[]): ProfileSummary {
  const summary: ProfileSummary = {
    PayloadUUID: requiredString(profile, 'PayloadUUID', 'profile'),
    PayloadIdentifier: requiredString(profile, 'PayloadIdentifier', 'profile'),
    PayloadVersion: typeof profile.PayloadVersion === 'number' ? profile.PayloadVersion : 1,
    PayloadRemovalDisallowed: profile.PayloadRemovalDisallowed === true,
    payloads: payloads.map((p) => {
      const item: ProfileSummary['payloads'][number] = {
        PayloadType: String(p.PayloadType),
        PayloadVersion: typeof p.PayloadVersion === 'number' ? p.PayloadVersion : 1,
        PayloadIdentifier: String(p.PayloadIdentifier ?? ''),
        PayloadUUID: String(p.PayloadUUID ?? ''),
      };
      if (typeof p.PayloadDisplayName === 'string') item.PayloadDisplayName = p.PayloadDisplayName;
      return item;
    }),
  };
  if (typeof profile.PayloadDisplayName === 'string') summary.PayloadDisplayName = profile.PayloadDisplayName;
  if (typeof profile.PayloadOrganization === 'string') summary.PayloadOrganization = profile.PayloadOrganization;
  if (typeof profile.PayloadDescription === 'string') summary.PayloadDescription = profile.PayloadDescription;
  return summary;
}

/** The parts of an enrollment profile a device keeps, from the body of GET <enrollment url>. */
export function readEnrollmentProfile(body: Buffer): Enrollment {
  const { profile, payloads } = readProfile(body);
  const mdm = payloads.filter((p) => p.PayloadType === 'com.apple.mdm');
  if (mdm.length !== 1) throw new EnrollmentError(`enrollment profile: expected one com.apple.mdm payload, found ${mdm.length}`);
  const m = mdm[0];
  const topic = requiredString(m, 'Topic', 'com.apple.mdm');
  const serverUrl = requiredString(m, 'ServerURL', 'com.apple.mdm');
  const checkInUrl = typeof m.CheckInURL === 'string' ? m.CheckInURL : serverUrl;
  // iOS refuses the profile otherwise (com.apple.mdm.yaml: ServerURL and CheckInURL `format: ^https://.*$`);
  // the simulator also takes plain http on loopback, where its tests and the sandbox run.
  for (const [key, url] of [['ServerURL', serverUrl], ['CheckInURL', checkInUrl]] as const) {
    const problem = mdmUrlProblem(url);
    if (problem) throw new EnrollmentError(`com.apple.mdm: ${key}: ${problem}`);
  }
  const identityUuid = requiredString(m, 'IdentityCertificateUUID', 'com.apple.mdm');
  if (!topic.startsWith('com.apple.mgmt.')) throw new EnrollmentError(`com.apple.mdm: Topic "${topic}" is not an MDM push topic (com.apple.mgmt.…)`);
  if (m.SignMessage !== true) {
    // Without SignMessage the device authenticates with a TLS client certificate, which a shared
    // connection pool cannot do per device.
    throw new EnrollmentError('com.apple.mdm: SignMessage is not true; simulated devices authenticate with Mdm-Signature only');
  }
  const rights = m.AccessRights;
  if (typeof rights !== 'number' || rights <= 0 || rights > 8191 || (rights & 2 && !(rights & 1)) || (rights & 128 && !(rights & 64))) {
    throw new EnrollmentError(`com.apple.mdm: AccessRights ${String(rights)} is not a valid rights mask`);
  }
  const idPayload = payloads.find((p) => p.PayloadUUID === identityUuid);
  if (!idPayload) throw new EnrollmentError(`enrollment profile: no payload with PayloadUUID ${identityUuid} (the IdentityCertificateUUID)`);
  if (idPayload.PayloadType !== 'com.apple.security.pkcs12') {
    throw new EnrollmentError(`enrollment profile: identity payload is ${String(idPayload.PayloadType)}; only com.apple.security.pkcs12 is simulated`);
  }
  const p12 = idPayload.PayloadContent;
  if (!(p12 instanceof Uint8Array)) throw new EnrollmentError('com.apple.security.pkcs12: PayloadContent is not <data>');
  const password = typeof idPayload.Password === 'string' ? idPayload.Password : '';
  const identity = decodePkcs12(Buffer.from(p12), password);

  const { IdentityCertificateUUID: _identity, ...installed } = m;
  return {
    topic, serverUrl, checkInUrl, checkOutWhenRemoved: m.CheckOutWhenRemoved === true, identity, profile: profileSummary(profile, payloads), mdm: installed,
  };
}

// Apple (profiles/com.apple.mdm.yaml): "When updating the payload, the value of this key must not change. Any
// change is an error, and the update rejected."
const MDM_KEYS_FIXED_ON_UPDATE = ['Topic', 'ServerURL', 'CheckInURL', 'AssignedManagedAppleID', 'EnrollmentMode', 'RequiredAppIDForMDM'];
const PER_USER_CONNECTIONS = 'com.apple.mdm.per-user-connections';

/**
 * Why an installed MDM payload cannot be replaced by `next` (undefined: it can). Besides the fixed keys, "the
 * addition of any access right is an error" (AccessRights) and the per-user-connections capability "must not be
 * added or removed" (ServerCapabilities). IdentityCertificateUUID may change: that is how the identity is renewed.
 */
export function mdmUpdateProblem(installed: Dict, next: Dict): string | undefined {
  for (const key of MDM_KEYS_FIXED_ON_UPDATE) {
    if (JSON.stringify(installed[key]) !== JSON.stringify(next[key])) return `${key} must not change when the MDM payload is updated`;
  }
  const before = typeof installed.AccessRights === 'number' ? installed.AccessRights : 0;
  const after = typeof next.AccessRights === 'number' ? next.AccessRights : 0;
  if ((after & ~before) !== 0) return `AccessRights ${after} adds rights to ${before}; an update may only remove rights`;
  const perUser = (d: Dict) => Array.isArray(d.ServerCapabilities) && d.ServerCapabilities.includes(PER_USER_CONNECTIONS);
  if (perUser(installed) !== perUser(next)) return `${PER_USER_CONNECTIONS} must not be added or removed when the MDM payload is updated`;
  return undefined;
}

// A profile may come signed (CMS SignedData around the plist); the device reads the content either way.
function unwrapSignedProfile(body: Buffer): Buffer {
  if (body.length === 0 || body[0] !== 0x30) return body;
  try {
    const msg = forge.pkcs7.messageFromAsn1(forge.asn1.fromDer(forge.util.createBuffer(body.toString('latin1')))) as unknown as {
      rawCapture?: { content?: forge.asn1.Asn1 };
      content?: forge.util.ByteStringBuffer;
    };
    if (msg.content && typeof msg.content.bytes === 'function') return Buffer.from(msg.content.bytes(), 'latin1');
  } catch (err) {
    throw new EnrollmentError(`enrollment profile is neither an XML plist nor readable CMS: ${(err as Error).message}`);
  }
  throw new EnrollmentError('signed enrollment profile has no content');
}

/** PKCS#12 (with its payload password) → PEM certificate and private key. */
export function decodePkcs12(p12: Buffer, password: string): { certPem: string; keyPem: string } {
  let pfx: forge.pkcs12.Pkcs12Pfx;
  try {
    const asn = forge.asn1.fromDer(forge.util.createBuffer(p12.toString('latin1')));
    pfx = forge.pkcs12.pkcs12FromAsn1(asn, false, password);
  } catch (err) {
    throw new EnrollmentError(`com.apple.security.pkcs12: cannot open the PKCS#12 with its Password: ${(err as Error).message}`);
  }
  const keyBags = [
    ...(pfx.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag] ?? []),
    ...(pfx.getBags({ bagType: forge.pki.oids.keyBag })[forge.pki.oids.keyBag] ?? []),
  ];
  const certBags = pfx.getBags({ bagType: forge.pki.oids.certBag })[forge.pki.oids.certBag] ?? [];
  if (keyBags.length !== 1) throw new EnrollmentError(`com.apple.security.pkcs12: expected one private key, found ${keyBags.length}`);
  if (certBags.length === 0) throw new EnrollmentError('com.apple.security.pkcs12: no certificate');
  const keyBag = keyBags[0];
  let keyPem: string;
  if (keyBag.key) {
    keyPem = forge.pki.privateKeyToPem(keyBag.key);
  } else if (keyBag.asn1) {
    // Non-RSA keys: forge leaves the PKCS#8 structure; node:crypto reads it.
    const der = Buffer.from(forge.asn1.toDer(keyBag.asn1).getBytes(), 'latin1');
    keyPem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }).toString();
  } else {
    throw new EnrollmentError('com.apple.security.pkcs12: the key bag holds no key');
  }
  // With a chain in the file, the identity certificate is the one carrying the key's localKeyId.
  const keyId = keyBag.attributes?.localKeyId?.[0];
  const certBag = (keyId && certBags.find((b) => b.attributes?.localKeyId?.[0] === keyId)) || certBags[0];
  let certPem: string;
  if (certBag.cert) certPem = forge.pki.certificateToPem(certBag.cert);
  else if (certBag.asn1) certPem = forge.pem.encode({ type: 'CERTIFICATE', body: forge.asn1.toDer(certBag.asn1).getBytes() });
  else throw new EnrollmentError('com.apple.security.pkcs12: the certificate bag holds no certificate');
  return { certPem, keyPem };
}

function requiredString(d: Dict, key: string, where: string): string {
  const v = d[key];
  if (typeof v !== 'string' || v === '') throw new EnrollmentError(`${where}: ${key} is missing or not a string`);
  return v;
}
