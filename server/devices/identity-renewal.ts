import type { Logger } from '../log.js';
import type { PushService } from '../push/push-service.js';
import type { DeviceRecord, DeviceStore, EnrollmentStore } from '../storage/ports.js';
import type { CommandOwners } from './command-owners.js';
import type { CommandQueue } from './command-queue.js';
import type { IdentityProfile } from './enrollment-service.js';

// Device identities expire (DEVICE_IDENTITY_VALID_DAYS). Apple (managing-certificates-for-device-management-services-
// and-devices): "Replace the profile that contains your MDM payload before any of the certificates in that profile
// expire" — once it has expired the device cannot reach the server and is lost to management. Before that, the
// enrollment profile goes out again with InstallProfile: the same PayloadIdentifier, Topic, ServerURL and CheckInURL
// (profiles/com.apple.mdm.yaml: "When updating the payload, the value of this key must not change") and a new
// identity. The server accepts both identities until the device signs with the new one, then only the new one.
// Apple says nothing about when the device switches; the simulated device does so after reporting the command.

/** After a refused or unanswered renewal, the next attempt waits this long. */
const RETRY_AFTER_MS = 24 * 3600_000;
const BATCH = 100;

export interface IdentityRenewalDeps {
  devices: DeviceStore; enrollments: EnrollmentStore; queue: CommandQueue; push: PushService; log: Logger;
  /** Issues and records a new identity for the enrollment, inside the enrollment profile. */
  identityProfile: (enrollmentToken: string, topic: string, udid: string) => Promise<IdentityProfile>;
  renewBeforeMs: number;
}

export class IdentityRenewal {
  constructor(private readonly deps: IdentityRenewalDeps) {}

  register(owners: CommandOwners): void {
    owners.handle('identity-renewal', async (device, command) => {
      if (command.status === 'Acknowledged') {
        // Its next connection, signed with the new identity, retires the old one; ask for it now.
        this.deps.log.info({ udid: device.udid, commandUUID: command.commandUuid }, 'renewed identity installed; waiting for the device to use it');
        await this.deps.push.request([device.udid], 'renewed identity installed');
        return;
      }
      if (command.status !== 'Error' && command.status !== 'CommandFormatError') return;
      const reason = errorText(command.errorChain) ?? command.status;
      await this.deps.devices.failIdentityRenewal(device.udid, command.ownerRef!, `the device refused the renewed identity: ${reason}`);
      this.deps.log.error({ udid: device.udid, reason }, 'identity renewal refused by the device');
    });
  }

  /** One pass of the job: renew every device whose identity expires within the window. */
  async run(now = new Date()): Promise<{ renewed: number; failed: number }> {
    const due = await this.deps.devices.identityRenewalDue(new Date(now.getTime() + this.deps.renewBeforeMs), new Date(now.getTime() - RETRY_AFTER_MS), BATCH);
    let renewed = 0;
    let failed = 0;
    for (const device of due) {
      try {
        if (await this.renew(device)) renewed++;
      } catch (err) {
        failed++;
        this.deps.log.error({ udid: device.udid, error: (err as Error).message }, 'identity renewal failed');
      }
    }
    return { renewed, failed };
  }

  private async renew(device: DeviceRecord): Promise<boolean> {
    const enrollment = await this.deps.enrollments.enrollmentOfIdentity(device.certFingerprint);
    if (!enrollment) {
      this.deps.log.warn({ udid: device.udid }, 'identity renewal skipped: the device signs with an identity this server did not issue');
      return false;
    }
    // The device's own topic: an update may not change it, whatever push certificate is configured now.
    const next = await this.deps.identityProfile(enrollment.token, device.topic, device.udid);
    if (!(await this.deps.devices.startIdentityRenewal(device.udid, device.nextCertFingerprint, next))) return false;
    await this.deps.queue.enqueue(device.udid, { RequestType: 'InstallProfile', Payload: Buffer.from(next.plist) }, {
      owner: 'identity-renewal', ownerRef: next.fingerprint,
    });
    this.deps.log.info({ udid: device.udid, expiresAt: device.identityExpiresAt?.toISOString(), nextExpiresAt: next.notAfter.toISOString() }, 'identity renewal sent');
    return true;
  }
}

function errorText(chain: unknown): string | undefined {
  if (!Array.isArray(chain) || chain.length === 0) return undefined;
  const first = chain[0] as { ErrorCode?: unknown; ErrorDomain?: unknown; USEnglishDescription?: unknown; LocalizedDescription?: unknown };
  const text = first.USEnglishDescription ?? first.LocalizedDescription;
  return `${String(first.ErrorDomain)} ${String(first.ErrorCode)}${typeof text === 'string' ? `: ${text}` : ''}`;
}
