// ProfileList (the enrollment profile, the only one a simulated device holds) and InviteToProgram (the
// Apps and Books invitation the user accepts after the connection). Apple: mdm/apple-schema/mdm/commands/
// profile.list.yaml and application.invitetoprogram.yaml.
import type { Dict } from '../types.js';
import type { CommandContext, CommandHandler } from './context.js';

function profileList(ctx: CommandContext, base: Dict): Dict {
  const list: Dict[] = [];
  const p = ctx.profile;
  if (p) {
    const item: Dict = {
      PayloadUUID: p.PayloadUUID,
      PayloadIdentifier: p.PayloadIdentifier,
      PayloadVersion: p.PayloadVersion,
      PayloadRemovalDisallowed: p.PayloadRemovalDisallowed,
      HasRemovalPasscode: false,
      IsEncrypted: false,
      IsManaged: true,
      PayloadContent: p.payloads.map((x) => ({ ...x })),
    };
    if (p.PayloadDisplayName !== undefined) item.PayloadDisplayName = p.PayloadDisplayName;
    if (p.PayloadOrganization !== undefined) item.PayloadOrganization = p.PayloadOrganization;
    if (p.PayloadDescription !== undefined) item.PayloadDescription = p.PayloadDescription;
    list.push(item);
  }
  return { ...base, Status: 'Acknowledged', ProfileList: list };
}

function inviteToProgram(ctx: CommandContext, base: Dict, command: Dict): Dict {
  const programId = command.ProgramID;
  const url = command.InvitationURL;
  if (typeof programId !== 'string' || typeof url !== 'string') return { ...base, Status: 'CommandFormatError' };
  if (programId !== 'com.apple.cloudvpp') return { ...base, Status: 'Acknowledged', InvitationResult: 'InvalidProgramID' };
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:')) {
    return { ...base, Status: 'Acknowledged', InvitationResult: 'InvalidInvitationURL' };
  }
  // The user sees the invitation and accepts it once the connection is over (acceptInvitations).
  ctx.queueInvitation(url);
  return { ...base, Status: 'Acknowledged', InvitationResult: 'Acknowledged' };
}

export const ProfileList: CommandHandler = { since: '4.0', answer: profileList };
export const InviteToProgram: CommandHandler = { since: '7.0', answer: inviteToProgram };
