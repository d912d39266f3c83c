// Everything one running simulated service holds, passed to its routes and its control surface.
import type { EventRunner } from './events.js';
import type { FaultInjector } from './faults.js';
import type { Lifecycle } from './lifecycle.js';
import type { Notifier } from './notifications.js';
import type { ServiceState } from './state.js';
import type { SimQuirks, SimRequestLogEntry } from './types.js';
import { acceptInvitation } from './users.js';

export interface ServiceContext {
  state: ServiceState;
  lifecycle: Lifecycle;
  events: EventRunner;
  notifier: Notifier;
  faults: FaultInjector;
  requestLog: SimRequestLogEntry[];
  /** Items per page of /assets, /assignments, /users. */
  pageSize: number;
  /** http://host:port, known once the server listens. */
  origin: string;
  quirks: SimQuirks;
  /** After a PENDING answer, /status of that event is refused until this much time has passed. */
  minStatusPollIntervalMs: number;
  now: () => number;
}

/** A user accepts an invitation (from the invitation page or a test); Apple then sends USER_ASSOCIATED. */
export function acceptInvitationAndNotify(ctx: ServiceContext, inviteCode: string, appleAccount: string): void {
  const accepted = acceptInvitation(ctx.state, inviteCode, appleAccount);
  if (accepted) ctx.notifier.notify(accepted.loc, 'USER_ASSOCIATED', accepted.notification);
}
