// DeviceInformation: answers each query the device knows and its iOS has, from its own facts; the rest
// are left out, as a real device does. Apple: mdm/apple-schema/mdm/commands/information.device.yaml.
import { createHash } from 'node:crypto';
import { capacityGB, compareVersions, imeiFor, macFrom } from '../../models.js';
import type { Dict } from '../types.js';
import type { CommandContext, CommandHandler } from './context.js';

function deviceInformation(ctx: CommandContext, base: Dict, command: Dict): Dict {
  const queries = command.Queries;
  if (!Array.isArray(queries) || queries.some((q) => typeof q !== 'string')) {
    return { ...base, Status: 'CommandFormatError' };
  }
  const responses: Dict = {};
  for (const q of queries as string[]) {
    const v = queryValue(ctx, q);
    if (v !== undefined) responses[q] = v;
  }
  return { ...base, Status: 'Acknowledged', QueryResponses: responses };
}


/** One DeviceInformation answer, or undefined for queries this device does not know or its iOS lacks. */
function queryValue(ctx: CommandContext, query: string): unknown {
  const d = ctx.device;
  const os = d.osVersion;
  const atLeast = (v: string) => compareVersions(os, v) >= 0;
  const product = d.product;
  const seed = createHash('sha256').update(d.udid).digest();
  switch (query) {
    case 'UDID':
      return d.udid;
    case 'DeviceName':
      return d.deviceName;
    case 'OSVersion':
      return d.osVersion;
    case 'BuildVersion':
      return d.buildVersion;
    case 'ProductName':
      return d.productName;
    case 'SerialNumber':
      return d.serialNumber;
    case 'Model':
      return product.model;
    case 'ModelName':
      return product.modelName;
    case 'ModelNumber':
      return product.model.replace(/[A-Z]{2}\/A$/, '');
    case 'DeviceCapacity':
      return capacityGB(product);
    case 'AvailableDeviceCapacity':
      return availableCapacityGB(ctx, seed);
    case 'BatteryLevel':
      return atLeast('5.0') ? Math.round((0.2 + (seed[0] / 255) * 0.8) * 100) / 100 : undefined;
    case 'IMEI':
      return product.cellular ? imeiFor(d.udid) : undefined;
    case 'CellularTechnology':
      return product.cellular ? 3 : 0;
    case 'WiFiMAC':
      return macFrom(seed, 1);
    case 'BluetoothMAC':
      return macFrom(seed, 7);
    case 'IsSupervised':
      return false;
    case 'IsMultiUser':
      return atLeast('9.3') ? false : undefined;
    case 'IsMDMLostModeEnabled':
      return atLeast('9.3') ? false : undefined;
    case 'IsDeviceLocatorServiceEnabled':
      return atLeast('7.0') ? true : undefined;
    case 'IsActivationLockEnabled':
      return atLeast('7.0') ? true : undefined;
    case 'IsDoNotDisturbInEffect':
      return atLeast('7.0') ? false : undefined;
    case 'IsCloudBackupEnabled':
      return atLeast('7.1') ? d.appleAccount !== undefined : undefined;
    case 'AwaitingConfiguration':
      return atLeast('9.0') ? false : undefined;
    case 'iTunesStoreAccountIsActive':
      return atLeast('7.0') ? d.appleAccount !== undefined : undefined;
    case 'iTunesStoreAccountHash':
      return atLeast('8.0') && d.appleAccount
        ? createHash('sha256').update(d.appleAccount.toLowerCase()).digest('base64').slice(0, 28)
        : undefined;
    case 'TimeZone':
      return atLeast('14.0') ? 'Europe/London' : undefined;
    case 'DiagnosticSubmissionEnabled':
    case 'AppAnalyticsEnabled':
      return atLeast('9.3') ? false : undefined;
    case 'PersonalHotspotEnabled':
      return product.cellular && atLeast('7.0') ? false : undefined;
    case 'DataRoamingEnabled':
    case 'VoiceRoamingEnabled':
    case 'IsRoaming':
      return product.cellular ? false : undefined;
    default:
      return undefined;
  }
}

function availableCapacityGB(ctx: CommandContext, seed: Buffer): number {
  const d = ctx.device;
  const total = capacityGB(d.product);
  // The OS and the user's data take 30–60 % of the disk; apps take what their bundles weigh.
  let used = total * (0.3 + (seed[2] / 255) * 0.3);
  for (const r of ctx.apps()?.values() ?? []) if (!r.failed) used += r.app.bundleSize / 1e9;
  return Math.max(0, Math.round((total - used) * 100) / 100);
}

export const DeviceInformation: CommandHandler = { since: '4.0', answer: deviceInformation };
