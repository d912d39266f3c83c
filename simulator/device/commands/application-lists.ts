// InstalledApplicationList and ManagedApplicationList: the device's apps as each list reports them
// (keys by iOS version; Apple's transient statuses — Failed, UserInstalledApp, UserRejected, UpdateRejected,
// ManagementRejected — show once). Apple: mdm/apple-schema/mdm/commands/
// application.installed.list.yaml and application.managed.list.yaml.
import { compareVersions } from '../../models.js';
import type { Dict } from '../types.js';
import { afterReported, listedAsManaged, managedStatus } from '../apps.js';
import { stringArray, type CommandContext, type CommandHandler } from './context.js';

function installedApplicationList(ctx: CommandContext, base: Dict, command: Dict): Dict {
  const d = ctx.device;
  const ids = stringArray(command.Identifiers);
  const managedOnly = command.ManagedAppsOnly === true;
  const items = compareVersions(d.osVersion, '14.0') >= 0 ? stringArray(command.Items) : undefined;
  const os = d.osVersion;
  const since = (v: string) => compareVersions(os, v) >= 0;
  const now = ctx.now();
  const list: Dict[] = [];
  for (const rec of ctx.apps()?.values() ?? []) {
    // Only what is on the device: not a failed install, one still waiting on its user, or one the user deleted.
    if (rec.failed || rec.uninstalled || (rec.prompt && rec.prompt !== 'PromptingForManagement' && rec.prompt !== 'PromptingForUpdate')) continue;
    if (managedOnly && !rec.managed) continue;
    if (ids && !ids.includes(rec.app.bundleId)) continue;
    const installing = rec.readyAt > now;
    const a = rec.app;
    const item: Dict = {
      Identifier: a.bundleId,
      Name: a.name,
      Version: a.bundleVersion,
      ShortVersion: a.version,
      BundleSize: a.bundleSize,
      DynamicSize: installing ? 0 : Math.round(a.bundleSize * 0.12),
      Installing: installing,
    };
    if (since('9.2')) item.IsValidated = true;
    if (since('11.0')) item.ExternalVersionIdentifier = a.externalVersionIdentifier;
    if (since('11.3')) {
      item.AppStoreVendable = rec.vpp !== 'device';
      item.DeviceBasedVPP = rec.vpp === 'device';
      item.BetaApp = false;
      item.AdHocCodeSigned = false;
      item.HasUpdateAvailable = false;
    }
    if (items) {
      for (const k of Object.keys(item)) if (k !== 'Identifier' && !items.includes(k)) delete item[k];
    }
    list.push(item);
  }
  return { ...base, Status: 'Acknowledged', InstalledApplicationList: list };
}

function managedApplicationList(ctx: CommandContext, base: Dict, command: Dict): Dict {
  const ids = stringArray(command.Identifiers);
  const now = ctx.now();
  const out: Dict = {};
  for (const [bundleId, rec] of ctx.apps() ?? []) {
    if (!listedAsManaged(rec)) continue;
    if (ids && !ids.includes(bundleId)) continue;
    const status = managedStatus(rec, now);
    // Apple's schema marks every key of an item required (UnusedRedemptionCode is empty: VPP apps have none).
    out[bundleId] = {
      Status: status,
      ManagementFlags: rec.managementFlags,
      UnusedRedemptionCode: '',
      HasConfiguration: false,
      HasFeedback: false,
      IsValidated: status === 'Managed',
      ExternalVersionIdentifier: rec.app.externalVersionIdentifier,
    };
    afterReported(ctx.apps()!, bundleId, rec);
  }
  return { ...base, Status: 'Acknowledged', ManagedApplicationList: out };
}

export const InstalledApplicationList: CommandHandler = { since: '5.0', answer: installedApplicationList };
export const ManagedApplicationList: CommandHandler = { since: '5.0', answer: managedApplicationList };
