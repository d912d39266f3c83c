// The simulator's catalogue and device models: real apps, real iOS releases, products that run them.
import { describe, expect, it } from 'vitest';
import { CATALOGUE, lookupApp, lookupAppByBundleId } from '../simulator/catalogue.js';
import { SimulatedDevice } from '../simulator/device.js';
import { IOS_RELEASES, parseOsRange, productsFor } from '../simulator/models.js';
import { KEYNOTE, PAGES, clockEnv } from './support/simulated-devices.js';

describe('catalogue and device models', () => {
  it('looks apps up by iTunes Store ID and bundle id, with Apple ids for Apple apps', () => {
    expect(CATALOGUE.length).toBeGreaterThanOrEqual(20);
    expect(lookupApp(PAGES)?.bundleId).toBe('com.apple.Pages');
    expect(lookupApp(KEYNOTE)?.bundleId).toBe('com.apple.Keynote');
    expect(lookupApp(408709785)?.name).toBe('GarageBand');
    expect(lookupAppByBundleId('com.apple.Numbers')?.iTunesStoreID).toBe(361304891);
    expect(lookupApp(1)).toBeUndefined();
    expect(new Set(CATALOGUE.map((a) => a.iTunesStoreID)).size).toBe(CATALOGUE.length);
    expect(new Set(CATALOGUE.map((a) => a.bundleId)).size).toBe(CATALOGUE.length);
  });

  it('spreads an OS range over real releases, including both bounds', () => {
    const r = parseOsRange('9.3..17.5').map((x) => x.version);
    expect(r[0]).toBe('9.3');
    expect(r.at(-1)).toBe('17.5');
    expect(r).toContain('9.3.5');
    expect(r).toContain('16.0');
    expect(r).not.toContain('8.4.1');
    expect(r).not.toContain('17.5.1');
    expect(parseOsRange('12.4')).toEqual([{ version: '12.4', build: '16F156' }]);
    expect(() => parseOsRange('7.0..9')).toThrow(/outside/);
    expect(() => parseOsRange('17..9')).toThrow(/backwards/);
    expect(() => parseOsRange('nine')).toThrow(/9.3..17.5/);
    // Every table release can be simulated on at least one product.
    for (const rel of IOS_RELEASES) expect(productsFor(rel.version).length, rel.version).toBeGreaterThan(0);
  });

  it('refuses a product that cannot run the asked iOS version', () => {
    const { env } = clockEnv();
    expect(() => new SimulatedDevice(env, { productName: 'iPad2,5', osVersion: '12.0' })).toThrow(/runs iOS/);
    expect(() => new SimulatedDevice(env, { osVersion: '19.0' })).toThrow(/iOS 8 to 18/);
  });
});
