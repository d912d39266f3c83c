// What a command handler sees of the device it answers for, and the shape of an error report.
import type { CatalogueApp } from '../../catalogue.js';
import type { Enrollment, ProfileSummary } from '../enrollment-profile.js';
import type { AppRecord, DeviceFacts, Dict } from '../types.js';

export interface CommandContext {
  device: DeviceFacts;
  /** The installed enrollment profile, as ProfileList reports it. */
  profile?: ProfileSummary;
  /** The MDM enrollment, for InstallProfile updating its profile. */
  enrollment?: Enrollment;
  /** Profiles installed by InstallProfile (other than the enrollment profile). */
  installedProfiles(): ProfileSummary[];
  installProfile(summary: ProfileSummary): void;
  /** The updated enrollment profile, used from the next request on (this command's report still goes out under the old). */
  updateEnrollment(next: Enrollment): void;
  /** The device's apps, or undefined when it never had any (fleets keep devices small). */
  apps(): Map<string, AppRecord> | undefined;
  /** The device's apps, created when needed. */
  appMap(): Map<string, AppRecord>;
  now(): number;
  /** How long an accepted InstallApplication takes to finish installing. */
  installDelayMs: number;
  /** Whose license covers a VPP install of `app` (the App Store's check). */
  licenseFor(app: CatalogueApp): Promise<'device' | 'user' | undefined>;
  /** An invitation the user sees, accepted once the connection is over. */
  queueInvitation(url: string): void;
}

/** One RequestType the device understands: the iOS version that introduced it, and its answer. */
export interface CommandHandler {
  since: string;
  answer(ctx: CommandContext, base: Dict, command: Dict): Dict | Promise<Dict>;
}

const MDM_ERROR_DOMAIN = 'MCMDMErrorDomain';
// 12021 is the code iOS gives an unrecognised RequestType; the other codes are this simulator's own,
// kept in the same domain so servers see the shape real devices send.
export const ERR_UNKNOWN_COMMAND = 12021;
export const ERR_APP_NOT_FOUND = 12024;
export const ERR_APP_NOT_MANAGED = 12029;
export const ERR_APP_ALREADY = 12026;
export const ERR_NOT_SUPPORTED = 12025;

export function errorReport(base: Dict, code: number, localized: string, english: string, extra: Dict = {}, domain = MDM_ERROR_DOMAIN): Dict {
  return {
    ...base,
    Status: 'Error',
    ErrorChain: [{ ErrorCode: code, ErrorDomain: domain, LocalizedDescription: localized, USEnglishDescription: english }],
    ...extra,
  };
}

export function stringArray(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
}
