// ProfileList (the enrollment profile and those InstallProfile added), InstallProfile (another profile, or an
// update of the enrollment profile, e.g. a renewed identity) and InviteToProgram (the Apps and Books invitation
// the user accepts after the connection). Apple: mdm/apple-schema/mdm/commands/profile.list.yaml,
// profile.install.yaml, application.invitetoprogram.yaml; profiles/com.apple.mdm.yaml for what an update may change.
import { mdmUpdateProblem, profileSummary, readEnrollmentProfile, readProfile } from '../enrollment-profile.js';
import { DeviceError, type Dict } from '../types.js';
import { errorReport, type CommandContext, type CommandHandler } from './context.js';

// The codes are this simulator's own, in the domain iOS uses for profile installation errors.
const PROFILE_ERROR_DOMAIN = 'MCProfileErrorDomain';
const ERR_PROFILE_MALFORMED = 1000;
const ERR_MDM_UPDATE_REFUSED = 4001;
const ERR_SECOND_MDM_PROFILE = 4002;

function profileList(ctx: CommandContext, base: Dict): Dict {
  const list: Dict[] = [];
  for (const p of [ctx.profile, ...ctx.installedProfiles()]) {
    if (!p) continue;
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

function installProfile(ctx: CommandContext, base: Dict, command: Dict): Dict {
  const payload = command.Payload;
  if (!(payload instanceof Uint8Array)) return { ...base, Status: 'CommandFormatError' };
  const refuse = (code: number, why: string) => errorReport(base, code, 'Profile installation failed', why, {}, PROFILE_ERROR_DOMAIN);
  const body = Buffer.from(payload);
  let read: { profile: Dict; payloads: Dict[] };
  try {
    read = readProfile(body);
  } catch (err) {
    return refuse(ERR_PROFILE_MALFORMED, (err as Error).message);
  }
  if (!read.payloads.some((p) => p.PayloadType === 'com.apple.mdm')) {
    ctx.installProfile(profileSummary(read.profile, read.payloads));
    return { ...base, Status: 'Acknowledged' };
  }
  // An MDM payload replaces the enrollment only as an update of the same profile (its PayloadIdentifier): iOS
  // holds one MDM profile.
  const current = ctx.enrollment;
  if (!current || read.profile.PayloadIdentifier !== current.profile.PayloadIdentifier) {
    return refuse(ERR_SECOND_MDM_PROFILE, `another MDM profile is installed (${current?.profile.PayloadIdentifier ?? 'none'}); only an update of it is accepted`);
  }
  let next;
  try {
    next = readEnrollmentProfile(body);
  } catch (err) {
    if (!(err instanceof DeviceError)) throw err;
    return refuse(ERR_PROFILE_MALFORMED, err.message);
  }
  const problem = mdmUpdateProblem(current.mdm, next.mdm);
  if (problem) return refuse(ERR_MDM_UPDATE_REFUSED, problem);
  ctx.updateEnrollment(next);
  return { ...base, Status: 'Acknowledged' };
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
export const InstallProfile: CommandHandler = { since: '4.0', answer: installProfile };
export const InviteToProgram: CommandHandler = { since: '7.0', answer: inviteToProgram };
