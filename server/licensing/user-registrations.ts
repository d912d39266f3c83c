import { inviteToProgram } from '../../mdm/commands.js';
import { INVITED, REGISTERING, userStatusFromApple } from '../../vpp/flows.js';
import { SLOT_STATUSES } from '../../vpp/install-status.js';
import type { CommandQueue } from '../devices/command-queue.js';
import type { Logger } from '../log.js';
import type { DeviceRecord, Storage, SubscriptionRecord, VppUserRecord } from '../storage/ports.js';
import type { AppleClients } from './apple-clients.js';

type RegistrationPorts = Pick<Storage, 'vppUsers' | 'users' | 'installs' | 'assignments' | 'appleEvents'>;

/**
 * The user flow's Apple side: register the user, read back their status and invitation code, and send the
 * invitation to their devices with InviteToProgram (owner vpp-invite).
 */
export class UserRegistrations {
  constructor(private readonly deps: {
    storage: RegistrationPorts; clients: AppleClients; queue: CommandQueue; log: Logger;
    /** Apple's answer to the registration is an event: poll for it soon. */
    expectEvent: () => void;
  }) {}

  /** First refresh of the user flow: register the user at Apple; the invitation follows when Apple confirms. */
  async register(sub: SubscriptionRecord, userId: string, device: DeviceRecord): Promise<void> {
    const { vppUsers, users, appleEvents } = this.deps.storage;
    await this.markUserBundles(sub, userId, device, 'Waiting', REGISTERING);
    if (!(await vppUsers.claimRegistration(sub.id, userId))) return;
    const user = await users.get(userId);
    try {
      const refs = await this.deps.clients.for(sub).createUsers([{ clientUserId: userId, email: user?.email }]);
      await appleEvents.record(refs[0]!.eventId, sub.id, 'createUser');
      await vppUsers.update(sub.id, userId, { eventId: refs[0]!.eventId, invitedUdids: [] });
      this.deps.expectEvent();
    } catch (err) {
      // Free the claim so the next sync registers again.
      await vppUsers.delete(sub.id, userId);
      this.deps.log.error({ userId, error: (err as Error).message }, 'vpp user registration failed');
      throw err;
    }
  }

  /** The user as Apple has them now (status, invitation code), stored; undefined when Apple does not know them. */
  async refresh(sub: SubscriptionRecord, userId: string): Promise<VppUserRecord | undefined> {
    const { vppUsers } = this.deps.storage;
    const u = (await this.deps.clients.for(sub).users({ clientUserId: userId })).find((x) => x.clientUserId === userId);
    if (!u) return undefined;
    const current = await vppUsers.get(sub.id, userId);
    await vppUsers.update(sub.id, userId, { status: userStatusFromApple(current?.status, u.status), inviteCode: u.inviteCode ?? undefined, idHash: u.idHash ?? undefined });
    return vppUsers.get(sub.id, userId);
  }

  async invite(sub: SubscriptionRecord, userId: string, device: DeviceRecord, inviteCode: string | null): Promise<void> {
    const code = inviteCode ?? (await this.refresh(sub, userId))?.inviteCode ?? null;
    if (!code) return;
    const url = await this.deps.clients.for(sub).invitationUrl(code);
    await this.deps.storage.vppUsers.addInvitedDevice(sub.id, userId, device.udid);
    const cmd = await this.deps.queue.enqueue(device.udid, inviteToProgram(url), { owner: 'vpp-invite', ownerRef: userId });
    this.deps.log.info({ subscriptionId: sub.id, targetType: 'user', targetId: userId, udid: device.udid, commandUUID: cmd.commandUuid }, 'invitation sent');
    await this.markUserBundles(sub, userId, device, 'InvitationSent', INVITED);
  }

  /**
   * The user's bundles from this subscription on this device. A device that already holds a license slot keeps
   * its status: another device's late invitation must not free its slot for an eleventh device.
   */
  private async markUserBundles(sub: SubscriptionRecord, userId: string, device: DeviceRecord, status: 'Waiting' | 'InvitationSent', reason: string): Promise<void> {
    const { assignments, installs } = this.deps.storage;
    for (const b of (await assignments.bundlesForDevice(device.udid, userId)).filter((x) => x.targetType === 'user' && x.subscriptionId === sub.id)) {
      await installs.put({ bundleId: b.id, udid: device.udid, viaTargetType: 'user', viaTargetId: userId, status, reason }, { unlessStatusIn: SLOT_STATUSES });
    }
  }
}
