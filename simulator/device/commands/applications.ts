// InstallApplication (App Store apps by iTunesStoreID, VPP or not) and RemoveApplication. A VPP install is
// queued, then fails when no license covers it, as the App Store does; the device's user is asked before an
// install, a take-over (ChangeManagementState) or an update, as on an unsupervised device. Apple:
// mdm/apple-schema/mdm/commands/application.install.yaml and application.remove.yaml.
import { lookupApp, lookupAppByBundleId } from '../../catalogue.js';
import { compareVersions } from '../../models.js';
import { isInProgress } from '../apps.js';
import { isDict, type AppRecord, type Dict } from '../types.js';
import {
  ERR_APP_ALREADY,
  ERR_APP_NOT_FOUND,
  ERR_APP_NOT_MANAGED,
  ERR_NOT_SUPPORTED,
  errorReport,
  type CommandContext,
  type CommandHandler,
} from './context.js';

async function installApplication(ctx: CommandContext, base: Dict, command: Dict): Promise<Dict> {
  const d = ctx.device;
  const storeId = command.iTunesStoreID;
  if (command.ManifestURL !== undefined && storeId === undefined) {
    return errorReport(base, ERR_NOT_SUPPORTED, 'Enterprise apps are not supported', 'This device installs App Store apps only.', {
      RejectionReason: 'NotSupported',
    });
  }
  if (typeof storeId !== 'number' || !Number.isInteger(storeId)) {
    if (storeId === undefined && typeof command.Identifier === 'string') {
      const byId = lookupAppByBundleId(command.Identifier);
      if (byId) return installApplication(ctx, base, { ...command, iTunesStoreID: byId.iTunesStoreID });
    }
    return { ...base, Status: 'CommandFormatError' };
  }
  const options = isDict(command.Options) ? command.Options : {};
  const purchaseMethod = options.PurchaseMethod ?? 0;
  const flags = command.ManagementFlags ?? 0;
  if ((purchaseMethod !== 0 && purchaseMethod !== 1) || typeof flags !== 'number' || !Number.isInteger(flags)) {
    return { ...base, Status: 'CommandFormatError' };
  }
  const app = lookupApp(storeId);
  if (!app) {
    return errorReport(
      base,
      ERR_APP_NOT_FOUND,
      `Couldn't find the app with iTunes Store ID ${storeId}`,
      `The app with iTunes Store ID ${storeId} could not be found in the App Store.`,
    );
  }
  const existing = ctx.apps()?.get(app.bundleId);
  const now = ctx.now();
  const answer = d.promptAnswer;
  if (existing && !existing.failed && !existing.uninstalled && existing.reportOnce !== 'UserRejected') {
    if (isInProgress(existing, now)) {
      return errorReport(base, ERR_APP_ALREADY, `The app “${app.name}” is already scheduled for installation`, `The app “${app.name}” is already scheduled for installation.`, {
        RejectionReason: 'AppAlreadyQueued',
      });
    }
    if (!existing.managed) {
      // A user's own copy becomes managed only when the server asks to take it over (iOS 9+).
      if (command.ChangeManagementState !== 'Managed' || compareVersions(d.osVersion, '9.0') < 0) {
        return errorReport(base, ERR_APP_ALREADY, `The app “${app.name}” is already installed`, `The app “${app.name}” is already installed.`, {
          RejectionReason: 'AppAlreadyInstalled',
        });
      }
      existing.managementFlags = flags;
      if (purchaseMethod === 1) existing.vpp = (await ctx.licenseFor(app)) ?? existing.vpp;
      // An unsupervised device asks its user first (PromptingForManagement; ManagementRejected if refused).
      if (answer === 'accept') existing.managed = true;
      else if (answer === 'wait') existing.prompt = 'PromptingForManagement';
      else existing.reportOnce = 'ManagementRejected';
      return { ...base, Status: 'Acknowledged', Identifier: app.bundleId, State: existing.managed ? 'Managed' : 'PromptingForManagement' };
    }
    // Installing a managed app again updates it, which the user is asked about (UpdateRejected if refused).
    existing.managementFlags = flags;
    if (purchaseMethod === 1) existing.vpp = (await ctx.licenseFor(app)) ?? existing.vpp;
    if (answer === 'wait') existing.prompt = 'PromptingForUpdate';
    else if (answer === 'reject') existing.reportOnce = 'UpdateRejected';
    return { ...base, Status: 'Acknowledged', Identifier: app.bundleId, State: answer === 'accept' ? 'Managed' : 'PromptingForUpdate' };
  }

  const rec: AppRecord = { app, managed: true, managementFlags: flags, readyAt: now + ctx.installDelayMs };
  if (purchaseMethod === 1) {
    const license = await ctx.licenseFor(app);
    // Like the App Store: the device queues the install, then fails it when no license covers it (device
    // licenses need iOS 9). A user license needs the user's Apple Account: the device asks them to sign in.
    if (license === undefined || (license === 'device' && compareVersions(d.osVersion, '9.0') < 0)) {
      rec.failed = true;
    } else {
      rec.vpp = license;
      if (license === 'user' && !d.appleAccount) rec.prompt = 'PromptingForLogin';
    }
  }
  // An unsupervised device asks its user before installing (Prompting; UserRejected if refused).
  if (!rec.failed && !rec.prompt && answer !== 'accept') {
    if (answer === 'wait') rec.prompt = 'Prompting';
    else rec.reportOnce = 'UserRejected';
  }
  ctx.appMap().set(app.bundleId, rec);
  return { ...base, Status: 'Acknowledged', Identifier: app.bundleId, State: rec.prompt ?? (rec.reportOnce ? 'Prompting' : 'Queued') };
}

function removeApplication(ctx: CommandContext, base: Dict, command: Dict): Dict {
  const id = command.Identifier;
  if (typeof id !== 'string' || id === '') return { ...base, Status: 'CommandFormatError' };
  const rec = ctx.apps()?.get(id);
  if (!rec || !rec.managed) {
    return errorReport(base, ERR_APP_NOT_MANAGED, `The app “${id}” is not managed`, `The app “${id}” is not managed.`);
  }
  ctx.apps()!.delete(id);
  return { ...base, Status: 'Acknowledged' };
}

export const InstallApplication: CommandHandler = { since: '5.0', answer: installApplication };
export const RemoveApplication: CommandHandler = { since: '5.0', answer: removeApplication };
