// Builders for the commands this server sends. Each returns the `Command` dict of Apple's
// {CommandUUID, Command} envelope; test/protocol.test.ts checks every one against Apple's YAML.

export type Command = { RequestType: string; [key: string]: unknown };

export class CommandError extends Error {
  override name = 'CommandError';
}

export function installApplication(opts: {
  iTunesStoreID: number;
  /** 1 = VPP license assignment (default), 0 = free app / legacy redemption code. */
  purchaseMethod?: 0 | 1;
  /** 1 = remove the app with the MDM profile (default), 4 = no backup, 5 = both. */
  managementFlags?: number;
  /** Take over an app the user already installed. */
  changeManagementState?: boolean;
}): Command {
  if (!Number.isSafeInteger(opts.iTunesStoreID) || opts.iTunesStoreID <= 0) {
    throw new CommandError(`iTunesStoreID: expected a positive integer, got ${String(opts.iTunesStoreID)}`);
  }
  const cmd: Command = {
    RequestType: 'InstallApplication',
    iTunesStoreID: opts.iTunesStoreID,
    ManagementFlags: opts.managementFlags ?? 1,
    Options: { PurchaseMethod: opts.purchaseMethod ?? 1 },
  };
  if (opts.changeManagementState) cmd.ChangeManagementState = 'Managed';
  return cmd;
}

export function inviteToProgram(invitationURL: string): Command {
  nonEmpty('InvitationURL', invitationURL);
  return { RequestType: 'InviteToProgram', ProgramID: 'com.apple.cloudvpp', InvitationURL: invitationURL };
}

export function deviceInformation(queries: string[]): Command {
  if (!Array.isArray(queries) || queries.length === 0) throw new CommandError('Queries: expected at least one query');
  queries.forEach((q, i) => nonEmpty(`Queries[${i}]`, q));
  return { RequestType: 'DeviceInformation', Queries: [...queries] };
}

export function installedApplicationList(opts: { identifiers?: string[]; managedAppsOnly?: boolean } = {}): Command {
  const cmd: Command = { RequestType: 'InstalledApplicationList' };
  if (opts.identifiers !== undefined) cmd.Identifiers = identifiers(opts.identifiers);
  if (opts.managedAppsOnly !== undefined) cmd.ManagedAppsOnly = opts.managedAppsOnly;
  return cmd;
}

export function managedApplicationList(ids?: string[]): Command {
  const cmd: Command = { RequestType: 'ManagedApplicationList' };
  if (ids !== undefined) cmd.Identifiers = identifiers(ids);
  return cmd;
}

export function removeApplication(identifier: string): Command {
  nonEmpty('Identifier', identifier);
  return { RequestType: 'RemoveApplication', Identifier: identifier };
}

export function profileList(): Command {
  return { RequestType: 'ProfileList' };
}

export function deviceConfigured(): Command {
  return { RequestType: 'DeviceConfigured' };
}

export function commandEnvelope(commandUUID: string, command: Command): { CommandUUID: string; Command: Command } {
  nonEmpty('CommandUUID', commandUUID);
  return { CommandUUID: commandUUID, Command: command };
}

function identifiers(ids: string[]): string[] {
  if (!Array.isArray(ids)) throw new CommandError('Identifiers: expected an array of bundle identifiers');
  ids.forEach((id, i) => nonEmpty(`Identifiers[${i}]`, id));
  return [...ids];
}

function nonEmpty(key: string, v: unknown): void {
  if (typeof v !== 'string' || v.length === 0) throw new CommandError(`${key}: expected a non-empty string`);
}
