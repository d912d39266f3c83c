// The commands a simulated device understands, one handler per RequestType with the iOS version that
// introduced it (mdm/apple-schema/mdm/commands). Anything else gets iOS's "unknown command" error.
import { compareVersions } from '../../models.js';
import type { Dict } from '../types.js';
import { InstalledApplicationList, ManagedApplicationList } from './application-lists.js';
import { InstallApplication, RemoveApplication } from './applications.js';
import { ERR_UNKNOWN_COMMAND, errorReport, type CommandContext, type CommandHandler } from './context.js';
import { DeviceInformation } from './device-information.js';
import { InstallProfile, InviteToProgram, ProfileList } from './profiles-and-programs.js';

export type { CommandContext } from './context.js';

const HANDLERS: Readonly<Record<string, CommandHandler>> = {
  DeviceInformation,
  InstalledApplicationList,
  ManagedApplicationList,
  ProfileList,
  InstallProfile,
  InstallApplication,
  RemoveApplication,
  InviteToProgram,
  DeviceConfigured: { since: '9.0', answer: (_ctx, base) => ({ ...base, Status: 'Acknowledged' }) },
};

/** The report for one well-formed command (`base` holds UDID and CommandUUID). */
export function answerWithHandler(ctx: CommandContext, base: Dict, command: Dict & { RequestType: string }): Dict | Promise<Dict> {
  const rt = command.RequestType;
  const handler = Object.hasOwn(HANDLERS, rt) ? HANDLERS[rt] : undefined;
  if (handler === undefined || compareVersions(ctx.device.osVersion, handler.since) < 0) {
    return errorReport(base, ERR_UNKNOWN_COMMAND, 'Unknown command', `The command “${rt}” is not recognized.`);
  }
  return handler.answer(ctx, base, command);
}
