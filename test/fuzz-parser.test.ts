// The device-message parser on its own (mdm/plist.ts, mdm/messages.ts), in process: the shapes plist.parse
// would silently misread are refused, refusal messages stay short and well-formed, and under fuzzing the
// parser only ever throws its own typed errors. The same mutations go through the real server in
// fuzz-device.test.ts; here they are cheap, so there are many more of them.
//   FUZZ_LONG=1 (or FUZZ_RUNS=n) runs 50,000; a failure prints FUZZ_SEED=<seed> FUZZ_PATH=<path> to replay it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError, parseCheckIn, parseReport } from '../mdm/messages.js';
import { PlistError, buildPlist, parsePlistDict, referencePlistDict } from '../mdm/plist.js';
import { readPlainPlist } from '../mdm/plist-reader.js';
import { countReason, fuzz, fuzzRuns, fuzzTimeout, newTally } from './support/fuzz-harness.js';
import { bodyOf, recipe, type Seed } from './support/plist-mutations.js';
import { capture, captureFiles, expectPlistError, expectProtocolError } from './support/protocol.js';

const plist = (inner: string) => `<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>${inner}</dict></plist>`;
const wellFormed = (s: string) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
const value = (xml: string) => parsePlistDict(plist(`<key>v</key>${xml}`)).v;

describe('parsePlistDict refuses what plist.parse would silently misread', () => {
  it.each(['1e400', '1e+300', '0x10', '12abc', '1.5', '9 9'])('<integer>%s</integer> (plist.parse reads a different number)', (content) => {
    expectPlistError(plist(`<key>n</key><integer>${content}</integer>`), /n is not a valid number/);
  });
  it('accepts the integers devices write: signed, padded, and beyond 2^53 (as the nearest number)', () => {
    expect(value('<integer>-42</integer>')).toBe(-42);
    expect(value('<integer>\n\t7\n</integer>')).toBe(7);
    expect(value('<integer>18446744073709551615</integer>')).toBe(18446744073709551615);
  });
  it.each(['1.5abc', '1e5x', '0x1p3', '1,5'])('<real>%s</real>', (content) => {
    expectPlistError(plist(`<key>r</key><real>${content}</real>`), /r is not a valid number/);
  });
  it('accepts the reals devices write', () => {
    expect([value('<real>1.5</real>'), value('<real>-0.25</real>'), value('<real>1e-3</real>'), value('<real>.5</real>'), value('<real>2</real>')]).toEqual([1.5, -0.25, 0.001, 0.5, 2]);
  });
  it.each(['2024', '2024-01-01', 'Tue, 02 Jan 2024 03:04:05 GMT', '2024-01-02 03:04:05'])('<date>%s</date> (not ISO 8601 as Apple writes it)', (content) => {
    expectPlistError(plist(`<key>t</key><date>${content}</date>`), /t is not a valid <date>/);
  });
  it('accepts the dates devices write', () => {
    expect(value('<date>2024-01-02T03:04:05Z</date>')).toEqual(new Date('2024-01-02T03:04:05Z'));
  });
  it('a key with no value (plist.parse makes it an empty string)', () => {
    expectPlistError(plist('<key>UDID</key><string>u</string><key>Status</key>'), /key Status has no value/);
    expectPlistError(plist('<key>Status</key><!-- nothing --><key/>'), /no value|Unexpected <key>/);
  });
  it.each([
    ['<key><dict/></key><string>x</string>', 'an element inside <key> (plist.parse names the key "null")'],
    ['<key>Sta<!-- -->tus</key><string>Idle</string>', 'a comment inside <key> (plist.parse keeps "Sta")'],
    ['<key>s</key><string>a<b/>c</string>', 'an element inside <string> (plist.parse drops it)'],
    ['<key>n</key><integer>1<!-- -->2</integer>', 'a comment inside <integer> (plist.parse reads 1)'],
    ['<key>d</key><data>QU<x/>JD</data>', 'an element inside <data> (plist.parse drops it)'],
  ])('%s: %s', (inner) => {
    expectPlistError(plist(inner), /may hold only text/);
  });
  it('still accepts CDATA in a string and comments between entries', () => {
    expect(parsePlistDict(plist('<!-- c --><key>s</key><string><![CDATA[a<b>]]></string>'))).toEqual({ s: 'a<b>' });
  });
});

describe('the plist checks take time linear in the body', () => {
  // Before the fix the nesting scan was quadratic on "<dict" without ">": 1 MiB of it held the event loop for
  // about 40 s (2 MiB, the default cap, for minutes), which the test's timeout catches; nothing here measures time.
  it.each(['<dict ', '<key x', '<integer '])('1 MiB of "%s" with no ">" is refused', (chunk) => {
    const body = Buffer.from(`<plist>${chunk.repeat(Math.floor((1024 * 1024) / chunk.length))}`);
    expect(() => parsePlistDict(body)).toThrow(PlistError);
  }, 20_000);
});

describe('refusal messages that quote device input stay short and never split a character', () => {
  // Emoji are two UTF-16 units; one more character in front puts a cut in the middle of one at either parity.
  it.each(['', 'x'])('an unknown MessageType made of emoji (prefix "%s")', (prefix) => {
    let message = '';
    try { parseCheckIn({ MessageType: prefix + '😀'.repeat(100), Topic: 't', UDID: 'u' }); } catch (err) { message = (err as Error).message; }
    expect(message).toMatch(/unknown MessageType/);
    expect(wellFormed(message)).toBe(true);
  });
  it.each(['', 'x'])('an XML error quoting emoji (prefix "%s")', (prefix) => {
    let message = '';
    try { parsePlistDict(plist(`<key>A</key><string>x</string><${prefix}${'😀'.repeat(150)}`)); } catch (err) { message = (err as Error).message; }
    expect(message).toMatch(/malformed XML plist/);
    expect(wellFormed(message)).toBe(true);
  });
  it('a bad value under a 5,000-character key', () => {
    const key = 'k'.repeat(5000);
    expectPlistError(plist(`<key>${key}</key><integer>NaN</integer>`), /is not a valid number/);
    let message = '';
    try { parsePlistDict(plist(`<key>${key}</key><date>never</date>`)); } catch (err) { message = (err as Error).message; }
    expect(message.length).toBeLessThan(400);
  });
});

describe('parser fuzzing (in process)', () => {
  const seeds: Seed[] = [
    ...captureFiles.map((file) => {
      const text = capture(file).toString('utf8');
      return { endpoint: file.startsWith('DeviceInformation') ? 'connect' as const : 'checkin' as const, name: file, text, dict: parsePlistDict(text) };
    }),
    ...[{ UDID: 'u', Status: 'Error', CommandUUID: 'c', ErrorChain: [{ ErrorCode: 12, ErrorDomain: 'MCMDMErrorDomain', LocalizedDescription: 'x' }] },
      { UDID: 'u', Status: 'Idle' }].map((d) => ({ endpoint: 'connect' as const, name: String(d.Status), text: buildPlist(d), dict: d })),
  ];
  const runs = fuzzRuns(3_000, 50_000);

  it('only PlistError or ProtocolError, with short well-formed messages', async () => {
    const tally = newTally();
    await fuzz('in-process parser', recipe(seeds.length), async (r) => {
      const body = bodyOf(seeds, r);
      tally.requests++;
      try {
        const dict = parsePlistDict(body);
        if (seeds[r.seed % seeds.length]!.endpoint === 'checkin') parseCheckIn(dict); else parseReport(dict);
      } catch (err) {
        expect(err instanceof PlistError || err instanceof ProtocolError, `not a typed parse error: ${(err as Error)?.stack}`).toBe(true);
        const message = (err as Error).message;
        expect(wellFormed(message), `message splits a character: ${JSON.stringify(message)}`).toBe(true);
        expect(message.length, message.slice(0, 200)).toBeLessThan(400);
        countReason(tally, message);
      }
    }, { runs, batchSize: 1_000, tally, afterBatch: async () => {} });
  }, fuzzTimeout(runs, 5));

  // The fast reader (mdm/plist-reader.ts) stands in for the plist package on plain bodies: same value, same refusal.
  const outcome = (read: () => unknown) => { try { return { value: read() }; } catch (err) { return { error: (err as Error).message }; } };
  it('the fast plist reader takes every capture and agrees with the plist package on them and on every mutation', async () => {
    for (const s of seeds) expect(readPlainPlist(s.text), s.name).toEqual(referencePlistDict(s.text));
    let taken = 0;
    await fuzz('fast plist reader', recipe(seeds.length), async (r) => {
      const body = bodyOf(seeds, r);
      const fast = outcome(() => parsePlistDict(body));
      expect(fast).toEqual(outcome(() => referencePlistDict(body)));
      if ('value' in fast) taken++;
    }, { runs, batchSize: 1_000, tally: newTally(), afterBatch: async () => {} });
    expect(taken).toBeGreaterThan(0);
  }, fuzzTimeout(runs, 5));
});
