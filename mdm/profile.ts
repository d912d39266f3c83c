import { randomUUID } from 'node:crypto';
import { buildPlist } from './plist.js';

export class ProfileError extends Error {
  override name = 'ProfileError';
}

/** Every access right (SPEC §4): 1|2|4|…|4096. */
const ALL_ACCESS_RIGHTS = 8191;

/**
 * The enrollment profile (SPEC §4): a Configuration profile holding the device's PKCS#12 identity and a
 * com.apple.mdm payload that names that identity by its PayloadUUID.
 */
export function buildEnrollmentProfile(opts: {
  pkcs12: Buffer;
  pkcs12Password: string;
  topic: string;
  serverURL: string;
  checkInURL: string;
  organization: string;
  /** Reverse-DNS base for the PayloadIdentifiers, e.g. com.example.mdm.enroll. */
  identifier: string;
}): { plist: string; profileUUID: string; identityUUID: string } {
  if (!(opts.pkcs12 instanceof Uint8Array) || opts.pkcs12.length === 0) throw new ProfileError('pkcs12: empty');
  // Devices refuse an MDM payload whose Topic does not carry Apple's MDM prefix.
  if (!opts.topic.startsWith('com.apple.mgmt.')) {
    throw new ProfileError(`topic: expected the push certificate's UID (com.apple.mgmt.…), got '${opts.topic}'`);
  }
  for (const [name, url] of [['serverURL', opts.serverURL], ['checkInURL', opts.checkInURL]] as const) {
    if (!/^https?:\/\/[^\s]+$/.test(url)) throw new ProfileError(`${name}: expected an http(s) URL, got '${url}'`);
  }
  if (!/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(opts.identifier)) {
    throw new ProfileError(`identifier: expected a reverse-DNS name, got '${opts.identifier}'`);
  }

  const profileUUID = randomUUID().toUpperCase();
  const identityUUID = randomUUID().toUpperCase();
  const mdmUUID = randomUUID().toUpperCase();

  const identityPayload = {
    PayloadType: 'com.apple.security.pkcs12',
    PayloadVersion: 1,
    PayloadIdentifier: `${opts.identifier}.identity`,
    PayloadUUID: identityUUID,
    PayloadDisplayName: 'MDM Identity',
    PayloadCertificateFileName: 'identity.p12',
    PayloadContent: opts.pkcs12,
    Password: opts.pkcs12Password,
  };
  const mdmPayload = {
    PayloadType: 'com.apple.mdm',
    PayloadVersion: 1,
    PayloadIdentifier: `${opts.identifier}.mdm`,
    PayloadUUID: mdmUUID,
    PayloadDisplayName: 'Mobile Device Management',
    PayloadOrganization: opts.organization,
    IdentityCertificateUUID: identityUUID,
    Topic: opts.topic,
    ServerURL: opts.serverURL,
    CheckInURL: opts.checkInURL,
    SignMessage: true,
    CheckOutWhenRemoved: true,
    AccessRights: ALL_ACCESS_RIGHTS,
  };
  const profile = {
    PayloadType: 'Configuration',
    PayloadVersion: 1,
    PayloadIdentifier: opts.identifier,
    PayloadUUID: profileUUID,
    PayloadDisplayName: `${opts.organization} MDM Enrollment`,
    PayloadOrganization: opts.organization,
    PayloadDescription: `Enrolls this device in ${opts.organization}'s device management.`,
    PayloadContent: [identityPayload, mdmPayload],
  };
  return { plist: buildPlist(profile), profileUUID, identityUUID };
}
