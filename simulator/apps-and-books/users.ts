// What creating, updating and retiring users does, and a user accepting an invitation: pure operations
// over the state. Apple's rules: a Registered user gets an inviteCode, a Managed Apple Account is associated
// at once, retiring gives the user's revocable licenses back and keeps the record, and a clientUserId has at
// most one active record. https://developer.apple.com/documentation/devicemanagement/managing-users
import { randomBytes } from 'node:crypto';
import { fail, newOutcome, type Outcome } from './events.js';
import type { ManagedUserRequest } from './requests.js';
import { activeUser, idHash, releaseUserLicenses, touch, userView, type Location, type ServiceState } from './state.js';
import { SimulatorError, type SimUser } from './types.js';

/** The user is now tied to an Apple Account (an accepted invitation, or a Managed Apple Account). */
function markAssociated(u: SimUser, appleAccount: string): void {
  u.status = 'Associated';
  u.appleAccount = appleAccount;
  u.idHash = idHash(appleAccount);
}

export function createUsers(state: ServiceState, loc: Location, users: ManagedUserRequest[]): Outcome {
  const o = newOutcome();
  for (const req of users) {
    if (activeUser(loc, req.clientUserId)) {
      // Apple's asynchronous 9716 "A registered user already exists with the specified clientUserId"
      // (handling-error-responses). Apple does not say whether the existing record's email changes: it does not.
      fail(o, 9716, undefined, { clientUserId: req.clientUserId });
      continue;
    }
    // A retired clientUserId may be created again: a new record beside the retired one(s).
    const u: SimUser = { clientUserId: req.clientUserId, status: 'Registered' };
    if (req.email !== undefined) u.email = req.email;
    if (req.managedAppleId) {
      // A Managed Apple Account is associated at once, with no invitation (Apple: iOS 9.3+).
      u.managedAppleId = req.managedAppleId;
      markAssociated(u, req.managedAppleId);
    } else {
      u.inviteCode = randomBytes(16).toString('hex');
      state.invites.set(u.inviteCode, { loc, user: u });
    }
    loc.users.push(u);
    o.numCompleted++;
    o.succeeded.push(userView(u));
  }
  return o;
}

export function updateUsers(state: ServiceState, loc: Location, users: ManagedUserRequest[]): Outcome {
  const o = newOutcome();
  for (const req of users) {
    const u = activeUser(loc, req.clientUserId);
    if (!u) {
      fail(o, 9609, undefined, { clientUserId: req.clientUserId });
      continue;
    }
    if (req.email !== undefined) u.email = req.email;
    if (req.managedAppleId && u.status === 'Registered') {
      u.managedAppleId = req.managedAppleId;
      markAssociated(u, req.managedAppleId);
      if (u.inviteCode) state.invites.delete(u.inviteCode);
    }
    o.numCompleted++;
    o.succeeded.push(userView(u));
  }
  return o;
}

export function retireUsers(state: ServiceState, loc: Location, users: ManagedUserRequest[]): Outcome {
  const o = newOutcome();
  for (const req of users) {
    const u = activeUser(loc, req.clientUserId);
    if (!u) {
      fail(o, 9609, undefined, { clientUserId: req.clientUserId });
      continue;
    }
    u.status = 'Retired';
    if (u.inviteCode) state.invites.delete(u.inviteCode);
    // Retiring a user gives their revocable licenses back to the location.
    releaseUserLicenses(loc, u.clientUserId);
    o.numCompleted++;
    o.succeeded.push(userView(u));
  }
  return o;
}

/**
 * The user behind `inviteCode` accepts with their Apple Account. Returns the USER_ASSOCIATED notification
 * to send, or undefined when the same account had already accepted (nothing changed).
 */
export function acceptInvitation(
  state: ServiceState,
  inviteCode: string,
  appleAccount: string,
): { loc: Location; notification: Record<string, unknown> } | undefined {
  if (!appleAccount || !appleAccount.trim()) throw new SimulatorError('acceptInvitation needs the Apple Account that accepts');
  const ref = state.invites.get(inviteCode);
  if (!ref) throw new SimulatorError(`no open invitation with inviteCode ${inviteCode}`);
  const u = ref.user;
  if (u.status === 'Associated') {
    if (u.appleAccount === appleAccount) return undefined;
    throw new SimulatorError(`invitation ${inviteCode} was already accepted by another Apple Account`);
  }
  if (u.status !== 'Registered') throw new SimulatorError(`invitation ${inviteCode} belongs to a ${u.status} user`);
  markAssociated(u, appleAccount);
  touch(ref.loc);
  // Apple's USER_ASSOCIATED body (subscribing-to-notifications; notification-user-associated.json).
  return {
    loc: ref.loc,
    notification: {
      associatedUsers: [{ clientUserId: u.clientUserId, ...(u.email ? { email: u.email } : {}), idHash: u.idHash, inviteCode, status: 'Associated' }],
    },
  };
}
