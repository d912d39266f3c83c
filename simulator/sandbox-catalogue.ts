import { CATALOGUE } from './catalogue.js';
import type { SimAsset } from './apps-and-books.js';

// What the sandbox's demo sToken has bought: a few apps from the simulated store, one of them scarce so
// waiting and FCFS show at once, one user-only, and a book (listed, never bundled).
export function demoSandboxAssets(): SimAsset[] {
  const pick = (name: string) => CATALOGUE.find((a) => a.name === name)!;
  const asset = (name: string, totalCount: number, deviceAssignable = true): SimAsset => {
    const a = pick(name);
    return { adamId: String(a.iTunesStoreID), name: a.name, bundleId: a.bundleId, totalCount, deviceAssignable, productType: 'App', pricingParam: 'STDQ' };
  };
  return [
    asset('Pages', 50), asset('Keynote', 50), asset('Swift Playgrounds', 5), asset('Fraction Farm', 2), asset('Word Weaver', 20, false),
    { adamId: '1100000001', name: 'The Sandbox Handbook', totalCount: 30, productType: 'Book', pricingParam: 'STDQ', deviceAssignable: false },
  ];
}
