import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { buildPlist } from './plist.js';

export class ProfileError extends Error {
  override name = 'ProfileError';
}

/**
 * Why a ServerURL/CheckInURL is unacceptable, or undefined. Apple (mdm/apple-schema profiles/com.apple.mdm.yaml):
 * both have `format: ^https://.*$` ("The URL must begin with the 'https://' URL scheme"). Plain http is let
 * through for loopback hosts only, where just simulated devices and local tests connect; that exception is
 * this project's, not Apple's.
 */
export function mdmUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `expected an https URL, got '${url}'`;
  }
  if (/\s/.test(url)) return `expected an https URL, got '${url}'`;
  if (parsed.protocol === 'https:') return undefined;
  if (parsed.protocol === 'http:' && isLoopbackHost(parsed.hostname)) return undefined;
  return `Apple requires https (format ^https://), got '${url}' (plain http only on loopback hosts)`;
}

/** 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) return host === '::1' || /^::ffff:127\./.test(host);
  return false;
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
    const problem = mdmUrlProblem(url);
    if (problem) throw new ProfileError(`${name}: ${problem}`);
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
