import { notFound } from '../errors.js';
import type { DeviceRecord, DeviceStore, UserRecord, UserStore } from '../storage/ports.js';

/** What else follows a user: their licenses go back before they are deleted; a new Apple Account needs re-enrollment. */
export interface UserLifecycle {
  removingUser(userId: string): Promise<void>;
  appleAccountChanged(userId: string): Promise<void>;
}

export class UserDirectory {
  constructor(private readonly deps: { users: UserStore; devices: DeviceStore; lifecycle: UserLifecycle }) {}

  create(u: { id: string; email: string; appleAccount?: string }): Promise<UserRecord> {
    return this.deps.users.create(u);
  }

  list(): Promise<UserRecord[]> {
    return this.deps.users.list();
  }

  async get(id: string): Promise<{ user: UserRecord; devices: DeviceRecord[] }> {
    const user = await this.deps.users.get(id);
    if (!user) throw notFound(`no user with id "${id}"`);
    return { user, devices: await this.deps.devices.list({ userId: user.id }) };
  }

  async setAppleAccount(id: string, appleAccount: string | null): Promise<UserRecord> {
    const before = await this.deps.users.get(id);
    if (!before) throw notFound(`no user with id "${id}"`);
    const after = (await this.deps.users.setAppleAccount(id, appleAccount))!;
    if (before.appleAccount && before.appleAccount !== appleAccount) await this.deps.lifecycle.appleAccountChanged(id);
    return after;
  }

  /** False when there is no such user. */
  async delete(id: string): Promise<boolean> {
    if (!(await this.deps.users.get(id))) return false;
    await this.deps.lifecycle.removingUser(id);
    return this.deps.users.delete(id);
  }
}
