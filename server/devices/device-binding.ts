import type { DeviceRecord, EnrollmentRecord, IdentityRecord } from '../storage/ports.js';

// Which certificate may speak for a UDID. A certificate the server's CA signed is not enough: it must be an
// identity this server issued and has not revoked, and a UDID enrolled under one certificate moves to another
// only as a genuine re-enrollment. Otherwise anyone holding an unbound identity (any enrollment token) could
// Authenticate with a victim's UDID and receive its commands while the real device is refused.

/** Why a signing certificate is refused whatever it asks; undefined when it is a live identity of ours. */
export function identityRefusal(found: { identity: IdentityRecord } | undefined): string | undefined {
  if (!found) return 'the signing certificate was not issued by this server';
  if (found.identity.revokedAt) return `the signing certificate was revoked at ${found.identity.revokedAt.toISOString()}`;
  return undefined;
}

export type RebindReason = 'checked_out' | 'same_user' | 're_enrollment';

export type Binding =
  | { kind: 'new' }
  | { kind: 'same' }
  | { kind: 'rebind'; because: RebindReason; replacing: string }
  | { kind: 'refuse'; reason: string };

/** What an Authenticate for `udid`, signed by `fingerprint` issued through `enrollment`, may do to the stored device. */
export function bindingFor(device: DeviceRecord | undefined, fingerprint: string, enrollment: EnrollmentRecord | null): Binding {
  if (!device) return { kind: 'new' };
  if (device.certFingerprint === fingerprint) return { kind: 'same' };
  const replacing = device.certFingerprint;
  // Checked out, not merely "not enrolled": a device between Authenticate and its first TokenUpdate is not yet
  // enrolled, and must not be open to takeover in that moment.
  if (device.checkedOutAt) return { kind: 'rebind', because: 'checked_out', replacing };
  if (enrollment?.udid === device.udid) return { kind: 'rebind', because: 're_enrollment', replacing };
  if (enrollment?.userId && enrollment.userId === device.userId) return { kind: 'rebind', because: 'same_user', replacing };
  return {
    kind: 'refuse',
    reason: `device ${device.udid} is already enrolled under another certificate; it moves only after its CheckOut, `
      + `with an enrollment for its own user${device.userId ? ` (${device.userId})` : ''}, or with a re-enrollment the admin issued for this UDID`,
  };
}
