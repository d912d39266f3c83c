// What a DeviceSpec becomes: a real product running a real iOS release, with identifiers, or a DeviceError
// naming what cannot be simulated.
import { compareVersions, productByName, productsFor, randomSerialNumber, randomUdid, releaseFor } from '../models.js';
import { DeviceError, type DeviceSpec } from './types.js';

export interface ResolvedSpec {
  udid: string;
  serialNumber: string;
  productName: string;
  osVersion: string;
  buildVersion: string;
  deviceName: string;
}

export function resolveDeviceSpec(spec: DeviceSpec): ResolvedSpec {
  const osVersion = spec.osVersion ?? '17.5';
  const release = releaseFor(osVersion);
  const major = Number(osVersion.split('.')[0]);
  if (major < 8 || major > 18) throw new DeviceError(`OSVersion ${osVersion}: simulated devices run iOS 8 to 18`);
  const product = spec.productName ? productByName(spec.productName) : productsFor(osVersion)[0];
  if (!product) throw new DeviceError(`no simulated product runs iOS ${osVersion}`);
  if (compareVersions(osVersion, product.minOS) < 0 || compareVersions(osVersion, product.maxOS) > 0) {
    throw new DeviceError(`${product.productName} runs iOS ${product.minOS} to ${product.maxOS}, not ${osVersion}`);
  }
  if (spec.udid !== undefined && !/^[0-9a-fA-F]{40}$|^[0-9A-F]{8}-[0-9A-F]{16}$/.test(spec.udid)) {
    throw new DeviceError(`UDID must be 40 hex digits (or the 8-16 form of newer devices), got "${spec.udid}"`);
  }
  return {
    udid: spec.udid ?? randomUdid(),
    serialNumber: spec.serialNumber ?? randomSerialNumber(),
    productName: product.productName,
    osVersion,
    buildVersion: spec.buildVersion ?? release.build,
    deviceName: spec.deviceName ?? product.modelName,
  };
}
