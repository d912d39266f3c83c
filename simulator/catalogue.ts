// The store apps simulated devices can install by iTunes Store ID. Apple's own apps carry their real store
// IDs and bundle identifiers; the education apps are invented (ids in 1_6xx_xxx_xxx, bundle ids under
// com.example.) so they cannot be mistaken for real listings.

export interface CatalogueApp {
  /** The App Store's numeric id (Apple's adamId); what InstallApplication's iTunesStoreID carries. */
  iTunesStoreID: number;
  bundleId: string;
  name: string;
  /** CFBundleShortVersionString: what InstalledApplicationList reports as ShortVersion. */
  version: string;
  /** CFBundleVersion: what InstalledApplicationList reports as Version. */
  bundleVersion: string;
  /** Static bundle size in bytes (InstalledApplicationList BundleSize). */
  bundleSize: number;
  /** The store's id of this version (ExternalVersionIdentifier). */
  externalVersionIdentifier: number;
}

export const CATALOGUE: readonly CatalogueApp[] = Object.freeze([
  app(361309726, 'com.apple.Pages', 'Pages', '14.2', '7038.0.81', 512_344_064, 869_514_873),
  app(361285480, 'com.apple.Keynote', 'Keynote', '14.2', '7038.0.81', 640_221_184, 869_514_874),
  app(361304891, 'com.apple.Numbers', 'Numbers', '14.2', '7038.0.81', 478_150_656, 869_514_875),
  app(408709785, 'com.apple.mobilegarageband', 'GarageBand', '2.3.15', '1023.4', 1_837_105_152, 866_200_111),
  app(377298193, 'com.apple.iMovie', 'iMovie', '3.0.3', '4711.23', 802_476_032, 866_310_412),
  app(908519492, 'com.apple.Playgrounds', 'Swift Playgrounds', '4.5.1', '1750.11', 621_334_528, 865_112_903),
  app(1212699939, 'com.apple.clips', 'Clips', '3.1.5', '2417.4', 198_123_520, 864_998_201),
  app(1600000101, 'com.example.edu.fractionfarm', 'Fraction Farm', '2.4.0', '240', 84_213_760, 1_700_000_101),
  app(1600000102, 'com.example.edu.wordweaver', 'Word Weaver', '5.1.2', '512', 61_865_984, 1_700_000_102),
  app(1600000103, 'com.example.edu.atlasquest', 'Atlas Quest', '3.0.7', '307', 233_570_304, 1_700_000_103),
  app(1600000104, 'com.example.edu.chemlab', 'Pocket Chem Lab', '1.9.3', '193', 145_752_064, 1_700_000_104),
  app(1600000105, 'com.example.edu.readingroom', 'Reading Room', '7.2.0', '720', 92_471_296, 1_700_000_105),
  app(1600000106, 'com.example.edu.codecubs', 'Code Cubs', '2.0.1', '201', 118_022_144, 1_700_000_106),
  app(1600000107, 'com.example.edu.mathsprint', 'Math Sprint', '4.6.0', '460', 55_312_384, 1_700_000_107),
  app(1600000108, 'com.example.edu.starchart', 'Star Chart Class', '6.3.2', '632', 310_640_640, 1_700_000_108),
  app(1600000109, 'com.example.edu.languagelab', 'Language Lab', '3.4.1', '341', 176_160_768, 1_700_000_109),
  app(1600000110, 'com.example.edu.musicnotes', 'Music Notes Studio', '1.2.0', '120', 71_303_168, 1_700_000_110),
  app(1600000111, 'com.example.edu.historytimeline', 'History Timeline', '2.8.5', '285', 98_566_144, 1_700_000_111),
  app(1600000112, 'com.example.edu.physicsplay', 'Physics Playground', '1.5.4', '154', 204_472_320, 1_700_000_112),
  app(1600000113, 'com.example.edu.classnotes', 'Class Notes', '9.0.2', '902', 43_515_904, 1_700_000_113),
]);

const byStoreId = new Map(CATALOGUE.map((a) => [a.iTunesStoreID, a]));
const byBundleId = new Map(CATALOGUE.map((a) => [a.bundleId, a]));

export function lookupApp(iTunesStoreID: number): CatalogueApp | undefined {
  return byStoreId.get(iTunesStoreID);
}

export function lookupAppByBundleId(bundleId: string): CatalogueApp | undefined {
  return byBundleId.get(bundleId);
}

function app(
  iTunesStoreID: number,
  bundleId: string,
  name: string,
  version: string,
  bundleVersion: string,
  bundleSize: number,
  externalVersionIdentifier: number,
): CatalogueApp {
  return Object.freeze({ iTunesStoreID, bundleId, name, version, bundleVersion, bundleSize, externalVersionIdentifier });
}
