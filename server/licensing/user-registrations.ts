import { inviteToProgram } from '../../mdm/commands.js';
import type { EventFailure, UserStatus } from '../../vpp/client.js';
import { eventFailureClass } from '../../vpp/event-outcome.js';
import { INVITED, REGISTERING, userStatusFromApple } from '../../vpp/flows.js';
import { SLOT_STATUSES } from '../../vpp/install-status.js';
import type { CommandQueue } from '../devices/command-queue.js';
import type { Logger } from '../log.js';
import type { DeviceRecord, Storage, SubscriptionRecord, VppUserRecord } from '../storage/ports.js';
import type { AppleClients } from './apple-clients.js';

type RegistrationPorts = Pick<Storage, 'vppUsers' | 'users' | 'installs' | 'assignments' | 'appleEvents' | 'devices'>;

/** A user as Apple reports them (GET /users, or a USER_MANAGEMENT / USER_ASSOCIATED notification). */
export interface AppleUser { status?: string; inviteCode?: string; idHash?: string }

/**
 * The user flow's Apple side: register the user, read back their status and invitation code, and send the
 * invitation to their devices with InviteToProgram (owner vpp-invite).
 */
export class UserRegistrations {
  constructor(private readonly deps: { storage: RegistrationPorts; clients: AppleClients; queue: CommandQueue; log: Logger }) {}

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
    } catch (err) {
      // Free the claim so the next sync registers again. Had Apple taken the create before the answer was
      // lost (the client does not repeat it blindly), that create is answered by 9716, read as success.
      await vppUsers.delete(sub.id, userId);
      this.deps.log.error({ userId, error: (err as Error).message }, 'vpp user registration failed');
      throw err;
    }
  }

  /**
   * The user as Apple has them now (status, invitation code), stored; undefined when Apple has no active record.
   * Apple keeps retired records beside the active one ("zero or more entries in the Retired state, but only zero
   * or one entry in the Created or Associated state", managing-users), so the query asks for active users only —
   * and still skips Retired ones itself: Apple's own activeOnly=true example lists one (get-users-4mwln).
   */
  async refresh(sub: SubscriptionRecord, userId: string): Promise<VppUserRecord | undefined> {
    const u = (await this.deps.clients.for(sub).users({ clientUserId: userId, activeOnly: true }))
      .find((x) => x.clientUserId === userId && (x.status === 'Registered' || x.status === 'Associated'));
    return u ? this.record(sub, userId, u) : undefined;
  }

  /** Stores what Apple says of the user; an account change we know of stays until re-enrollment. */
  async record(sub: SubscriptionRecord, userId: string, u: AppleUser): Promise<VppUserRecord | undefined> {
    const { vppUsers } = this.deps.storage;
    const current = await vppUsers.get(sub.id, userId);
    if (!current) return undefined;
    const status = u.status === 'Registered' || u.status === 'Associated' || u.status === 'Retired' || u.status === 'Deleted' ? u.status as UserStatus : undefined;
    await vppUsers.update(sub.id, userId, { status: status && userStatusFromApple(current.status, status), inviteCode: u.inviteCode, idHash: u.idHash });
    return vppUsers.get(sub.id, userId);
  }

  /**
   * USER_ASSOCIATED: the users accepted their invitations. Returns those of ours now Associated, whose devices
   * should sync to get their licenses.
   */
  async associated(sub: SubscriptionRecord, users: Array<AppleUser & { clientUserId: string }>): Promise<string[]> {
    const out: string[] = [];
    for (const u of users) {
      const stored = await this.record(sub, u.clientUserId, { ...u, status: 'Associated' });
      if (stored?.status === 'Associated') out.push(u.clientUserId);
    }
    return out;
  }

  /**
   * Apple did not register the user. Never for good: the registration is dropped, so the next sync of one of
   * their devices registers them again; until then their installs say why.
   */
  async failed(sub: SubscriptionRecord, userId: string, failure: EventFailure): Promise<void> {
    const { vppUsers, devices } = this.deps.storage;
    await vppUsers.delete(sub.id, userId);
    const status = eventFailureClass(failure.errorNumber) === 'tryLater' ? 'Waiting' : 'Failed';
    const reason = `Apple did not register the user (${failure.errorNumber}: ${failure.errorMessage}); registering again at the next sync`;
    for (const d of await devices.list({ userId })) await this.markUserBundles(sub, userId, d, status, reason);
    this.deps.log.warn({ userId, errorNumber: failure.errorNumber }, 'vpp user registration failed at Apple');
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
  private async markUserBundles(sub: SubscriptionRecord, userId: string, device: DeviceRecord, status: 'Waiting' | 'InvitationSent' | 'Failed', reason: string): Promise<void> {
    const { assignments, installs } = this.deps.storage;
    for (const b of (await assignments.bundlesForDevice(device.udid, userId)).filter((x) => x.targetType === 'user' && x.subscriptionId === sub.id)) {
      await installs.put({ bundleId: b.id, udid: device.udid, viaTargetType: 'user', viaTargetId: userId, status, reason }, { unlessStatusIn: SLOT_STATUSES });
    }
  }
}
