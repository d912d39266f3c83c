// Hardware and OS facts simulated devices are made of: real iOS/iPadOS releases with their build numbers,
// real product identifiers with the OS range each one runs, and generators for serials, IMEIs and MACs.
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { compareOsVersions } from '../mdm/os-version.js';

export class DeviceModelError extends Error {
  override name = 'DeviceModelError';
}

export interface OsRelease {
  version: string;
  build: string;
}

// Public releases (first and last of most majors, plus a few in between) with Apple's build numbers.
export const IOS_RELEASES: readonly OsRelease[] = Object.freeze([
  { version: '8.0', build: '12A365' },
  { version: '8.4.1', build: '12H321' },
  { version: '9.0', build: '13A344' },
  { version: '9.3.5', build: '13G36' },
  { version: '10.0.2', build: '14A456' },
  { version: '10.3.3', build: '14G60' },
  { version: '11.0', build: '15A372' },
  { version: '11.4.1', build: '15G77' },
  { version: '12.0', build: '16A366' },
  { version: '12.4', build: '16F156' },
  { version: '12.5.7', build: '16H81' },
  { version: '13.0', build: '17A577' },
  { version: '13.7', build: '17H35' },
  { version: '14.0', build: '18A373' },
  { version: '14.8.1', build: '18H107' },
  { version: '15.0', build: '19A346' },
  { version: '15.7', build: '19H12' },
  { version: '16.0', build: '20A362' },
  { version: '16.7.8', build: '20H343' },
  { version: '17.0', build: '21A329' },
  { version: '17.5', build: '21F79' },
  { version: '17.5.1', build: '21F90' },
  { version: '17.6.1', build: '21G93' },
  { version: '18.0', build: '22A3354' },
  { version: '18.1', build: '22B83' },
  { version: '18.2', build: '22C152' },
]);

export interface Product {
  productName: string;
  /** Apple's marketing name, for people reading fleet output. */
  marketingName: string;
  modelName: 'iPhone' | 'iPad';
  model: string;
  minOS: string;
  maxOS: string;
  capacityGB: number;
  cellular: boolean;
}

const LATEST = '99';

export const PRODUCTS: readonly Product[] = Object.freeze([
  { productName: 'iPhone7,2', marketingName: 'iPhone 6', modelName: 'iPhone', model: 'MG4F2LL/A', minOS: '8.0', maxOS: '12.5.7', capacityGB: 16, cellular: true },
  { productName: 'iPhone8,1', marketingName: 'iPhone 6s', modelName: 'iPhone', model: 'MKQJ2LL/A', minOS: '9.0', maxOS: '15.8', capacityGB: 64, cellular: true },
  { productName: 'iPhone9,1', marketingName: 'iPhone 7', modelName: 'iPhone', model: 'MN8G2LL/A', minOS: '10.0', maxOS: '15.8', capacityGB: 32, cellular: true },
  { productName: 'iPhone10,4', marketingName: 'iPhone 8', modelName: 'iPhone', model: 'MQ6K2LL/A', minOS: '11.0', maxOS: '16.7.8', capacityGB: 64, cellular: true },
  { productName: 'iPhone12,1', marketingName: 'iPhone 11', modelName: 'iPhone', model: 'MWLT2LL/A', minOS: '13.0', maxOS: LATEST, capacityGB: 64, cellular: true },
  { productName: 'iPhone14,2', marketingName: 'iPhone 13 Pro', modelName: 'iPhone', model: 'MLTP3LL/A', minOS: '15.0', maxOS: LATEST, capacityGB: 128, cellular: true },
  { productName: 'iPhone15,2', marketingName: 'iPhone 14 Pro', modelName: 'iPhone', model: 'MQ0E3LL/A', minOS: '16.0', maxOS: LATEST, capacityGB: 128, cellular: true },
  { productName: 'iPhone16,1', marketingName: 'iPhone 15 Pro', modelName: 'iPhone', model: 'MTQM3LL/A', minOS: '17.0', maxOS: LATEST, capacityGB: 256, cellular: true },
  { productName: 'iPad2,5', marketingName: 'iPad mini', modelName: 'iPad', model: 'MD528LL/A', minOS: '6.0', maxOS: '9.3.5', capacityGB: 16, cellular: false },
  { productName: 'iPad4,1', marketingName: 'iPad Air', modelName: 'iPad', model: 'MD785LL/A', minOS: '7.0', maxOS: '12.5.7', capacityGB: 32, cellular: false },
  { productName: 'iPad6,11', marketingName: 'iPad (5th generation)', modelName: 'iPad', model: 'MP2F2LL/A', minOS: '10.2.1', maxOS: '16.7.8', capacityGB: 32, cellular: false },
  { productName: 'iPad7,5', marketingName: 'iPad (6th generation)', modelName: 'iPad', model: 'MR7F2LL/A', minOS: '11.3', maxOS: '17.7', capacityGB: 32, cellular: false },
  { productName: 'iPad11,6', marketingName: 'iPad (8th generation)', modelName: 'iPad', model: 'MYL92LL/A', minOS: '14.0', maxOS: LATEST, capacityGB: 32, cellular: false },
  { productName: 'iPad13,1', marketingName: 'iPad Air (4th generation)', modelName: 'iPad', model: 'MYFM2LL/A', minOS: '14.1', maxOS: LATEST, capacityGB: 64, cellular: false },
  { productName: 'iPad13,18', marketingName: 'iPad (10th generation)', modelName: 'iPad', model: 'MPQ03LL/A', minOS: '16.1', maxOS: LATEST, capacityGB: 64, cellular: false },
]);

/** Compares dotted versions numerically: "9.3.5" < "10.0". */
export const compareVersions = compareOsVersions;

const VERSION_RE = /^\d{1,2}(\.\d{1,2}){0,2}$/;

/**
 * "9.3..17.5" (inclusive) or a single "16.1" → the releases in that range, ascending. A bound that is not in
 * the release table is itself included (with a build number in Apple's pattern), so a range always yields
 * the versions it names.
 */
export function parseOsRange(range: string): OsRelease[] {
  const parts = range.split('..').map((s) => s.trim());
  if (parts.length > 2 || parts.some((p) => !VERSION_RE.test(p))) {
    throw new DeviceModelError(`OS range must look like "9.3..17.5" or "16.1", got "${range}"`);
  }
  const lo = parts[0];
  const hi = parts[1] ?? parts[0];
  for (const v of [lo, hi]) {
    const major = Number(v.split('.')[0]);
    if (major < 8 || major > 18) throw new DeviceModelError(`OS version ${v} is outside the simulated iOS 8 to 18`);
  }
  if (compareVersions(lo, hi) > 0) throw new DeviceModelError(`OS range "${range}" runs backwards`);
  const out = IOS_RELEASES.filter((r) => compareVersions(r.version, lo) >= 0 && compareVersions(r.version, hi) <= 0);
  for (const bound of new Set([lo, hi])) {
    if (!out.some((r) => compareVersions(r.version, bound) === 0)) out.push(releaseFor(bound));
  }
  return out.sort((a, b) => compareVersions(a.version, b.version));
}

/** The release for a version: from the table, else a build number in Apple's pattern (major+4, minor letter). */
export function releaseFor(version: string): OsRelease {
  if (!VERSION_RE.test(version)) throw new DeviceModelError(`not an iOS version: "${version}"`);
  const known = IOS_RELEASES.find((r) => compareVersions(r.version, version) === 0);
  if (known) return known;
  const [major, minor = 0, patch = 0] = version.split('.').map(Number);
  return { version, build: `${major + 4}${String.fromCharCode(65 + Math.min(minor, 25))}${100 + patch * 10}` };
}

/** The products that run a version; the i-th device takes the (i mod n)-th so a fleet mixes iPhones and iPads. */
export function productsFor(version: string): Product[] {
  return PRODUCTS.filter((p) => compareVersions(version, p.minOS) >= 0 && compareVersions(version, p.maxOS) <= 0);
}

export function productByName(productName: string): Product {
  const p = PRODUCTS.find((x) => x.productName === productName);
  if (!p) throw new DeviceModelError(`unknown product "${productName}"; known: ${PRODUCTS.map((x) => x.productName).join(', ')}`);
  return p;
}

// Apple's serial alphabet leaves out the letters that read like digits (O, I).
const SERIAL_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789';

export function randomSerialNumber(): string {
  let s = '';
  for (let i = 0; i < 12; i++) s += SERIAL_ALPHABET[randomInt(SERIAL_ALPHABET.length)];
  return s;
}

/** 40 lowercase hex digits, the UDID form of pre-2018 devices (and of the real captures). */
export function randomUdid(): string {
  return randomBytes(20).toString('hex');
}

/** A valid (Luhn-checked) IMEI derived from the UDID, so a device reports the same one every time. */
export function imeiFor(udid: string): string {
  const d = createHash('sha256').update('imei').update(udid).digest();
  const digits = [3, 5];
  for (let i = 0; i < 12; i++) digits.push(d[i] % 10);
  let sum = 0;
  for (let i = 0; i < 14; i++) {
    let x = digits[i];
    if (i % 2 === 1) {
      x *= 2;
      if (x > 9) x -= 9;
    }
    sum += x;
  }
  digits.push((10 - (sum % 10)) % 10);
  const s = digits.join('');
  return `${s.slice(0, 2)} ${s.slice(2, 8)} ${s.slice(8, 14)} ${s.slice(14)}`;
}

/** A unicast MAC address from six bytes of `seed` at `offset`. */
export function macFrom(seed: Buffer, offset: number): string {
  const b = Buffer.from(seed.subarray(offset, offset + 6));
  b[0] &= 0xfc;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function capacityGB(p: Product): number {
  // Formatted capacity: a "64 GB" device reports about 93 % of it.
  return Math.round(p.capacityGB * 0.931 * 100) / 100;
}
