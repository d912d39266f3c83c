// Plists and check-in/report parsing (mdm/plist.ts, mdm/messages.ts): real device captures, bad bodies and
// bad check-ins rejected with typed errors, reports, and what a parse costs.
import { buildBinary } from 'plist';
import { describe, expect, it, vi } from 'vitest';
import { validateCheckIn, validateCommandResponse } from '../mdm/apple-schema.js';
import { parseCheckIn, parseReport, type TokenUpdate } from '../mdm/messages.js';
import { buildPlist, parsePlistDict } from '../mdm/plist.js';
import { captureFiles, capture, captureDict, expectPlistError, expectProtocolError } from './support/protocol.js';

describe('device captures', () => {
  it('holds the captures this suite expects', () => {
    expect(captureFiles).toEqual([
      'Authenticate.1.plist',
      'Authenticate.2.plist',
      'DeviceInformation.1.plist',
      'TokenUpdate.1.plist',
      'TokenUpdate.2.plist',
    ]);
  });

  it.each(captureFiles)('%s parses, is typed, and matches Apple’s schema', (file) => {
    const dict = captureDict(file);
    expect(parsePlistDict(capture(file).toString('utf8'))).toEqual(dict);
    if (file.startsWith('DeviceInformation')) {
      const report = parseReport(dict);
      expect(report.Status).toBe('Acknowledged');
      expect(validateCommandResponse('DeviceInformation', dict)).toEqual({ ok: true });
    } else {
      const msg = parseCheckIn(dict);
      expect(msg.MessageType).toBe(file.split('.')[0]);
      expect(validateCheckIn(dict)).toEqual({ ok: true });
    }
  });

  it('Authenticate.1 (iPad, iOS 9) yields its device facts', () => {
    expect(parseCheckIn(captureDict('Authenticate.1.plist'))).toEqual({
      MessageType: 'Authenticate',
      Topic: 'com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9',
      UDID: '663b07bb783e9ade1dae4fbb92ea12afc0ce5b69',
      OSVersion: '9.3.5',
      BuildVersion: '13G36',
      ProductName: 'iPad2,5',
      SerialNumber: 'F5JM992LF193',
    });
  });

  it('Authenticate.2 (macOS) keeps DeviceName/Model/ModelName and ignores the undeclared Challenge', () => {
    const msg = parseCheckIn(captureDict('Authenticate.2.plist'));
    expect(msg).toMatchObject({ UDID: '66ADE930-5FDF-5EC4-8429-15640684C489', DeviceName: 'Fruit', Model: 'iMac14,2', ModelName: 'iMac' });
    expect(msg).not.toHaveProperty('Challenge');
    expect(validateCheckIn(captureDict('Authenticate.2.plist'), { allowUnknownKeys: false })).toEqual({
      ok: false,
      errors: ["Challenge: unknown key (not declared in Apple's schema)"],
    });
  });

  it('TokenUpdate.1 yields Buffers for Token and UnlockToken', () => {
    const msg = parseCheckIn(captureDict('TokenUpdate.1.plist')) as TokenUpdate;
    expect(msg.MessageType).toBe('TokenUpdate');
    expect(Buffer.isBuffer(msg.Token)).toBe(true);
    expect(msg.Token.toString('base64')).toBe('R+juwGLC9ynsFwPBs+GPGXHYXwC+dkRdNAgLqnAbX1E=');
    expect(msg.PushMagic).toBe('CEFDF0BD-E342-4A27-8742-E930EA116B0A');
    expect(Buffer.isBuffer(msg.UnlockToken)).toBe(true);
    expect(msg.UnlockToken!.subarray(0, 4).toString('latin1')).toBe('DATA');
    expect(msg.AwaitingConfiguration).toBe(false);
  });

  it('TokenUpdate.2 has no UnlockToken', () => {
    const msg = parseCheckIn(captureDict('TokenUpdate.2.plist')) as TokenUpdate;
    expect(msg.UnlockToken).toBeUndefined();
    expect(msg.Token.length).toBe(32);
  });

  it('DeviceInformation.1 is a command report with its result keys', () => {
    const report = parseReport(captureDict('DeviceInformation.1.plist'));
    expect(report).toEqual({
      UDID: '66ADE930-5FDF-5EC4-8429-15640684C489',
      Status: 'Acknowledged',
      CommandUUID: '76eda240-5488-4989-8339-f2ae160113c4',
      result: {
        RequestType: 'DeviceInformation',
        QueryResponses: { HostName: 'fruit.example.com', UDID: '66ADE930-5FDF-5EC4-8429-15640684C489' },
      },
    });
  });
});

describe('parsePlistDict rejects bad bodies', () => {
  const auth = capture('Authenticate.1.plist').toString('utf8');

  it('empty', () => {
    expectPlistError(Buffer.alloc(0), /^empty body/);
    expectPlistError('', /^empty body/);
    expectPlistError(' \n\t', /^empty body/);
  });

  it('garbage text', () => {
    expectPlistError('hello, this is not a plist', /not an XML plist/);
    expectPlistError(Buffer.from('{"MessageType":"Authenticate"}'), /not an XML plist/);
    expectPlistError('<html><body>hi</body></html>', /malformed XML plist: .*<plist>/);
  });

  it('truncated XML', () => {
    expectPlistError(auth.slice(0, auth.indexOf('<key>UDID')), /malformed XML plist: unclosed xml tag/);
    expectPlistError(auth.slice(0, auth.length - 20), /malformed XML plist/);
  });

  it('does not write xmldom diagnostics to the console', () => {
    const spy = vi.spyOn(console, 'error');
    try {
      expectPlistError(auth.slice(0, auth.length - 20), /malformed XML plist/);
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });

  it('binary plist bytes', () => {
    const binary = Buffer.from(buildBinary({ MessageType: 'Authenticate', UDID: 'x', Topic: 'y' }));
    expect(binary.subarray(0, 8).toString('latin1')).toBe('bplist00');
    expectPlistError(binary, /binary plists are not accepted/);
    expectPlistError(binary.toString('latin1'), /binary plists are not accepted/);
  });

  it('invalid UTF-8', () => {
    expectPlistError(Buffer.concat([Buffer.from('<plist><dict><key>a</key><string>'), Buffer.from([0xff, 0xfe]), Buffer.from('</string></dict></plist>')]), /UTF-8/);
  });

  it('billion laughs (internal entity expansion)', () => {
    const lol = `<?xml version="1.0"?>
<!DOCTYPE plist [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<plist version="1.0"><dict><key>MessageType</key><string>&lol3;</string></dict></plist>`;
    expectPlistError(lol, /entity declarations \(<!ENTITY\) are not accepted/);
  });

  it('external entity', () => {
    const xxe = `<?xml version="1.0"?>
<!DOCTYPE plist [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<plist version="1.0"><dict><key>UDID</key><string>&x;</string></dict></plist>`;
    expectPlistError(xxe, /entity declarations \(<!ENTITY\) are not accepted/);
  });

  it('any internal DTD subset, and references to undeclared entities', () => {
    expectPlistError(
      '<?xml version="1.0"?><!DOCTYPE plist [<!ELEMENT plist ANY>]><plist><dict/></plist>',
      /internal DTD subset is not accepted/,
    );
    expectPlistError('<plist><dict><key>a</key><string>&x;</string></dict></plist>', /undeclared entity/);
  });

  it('accepts the predefined entities and character references', () => {
    expect(parsePlistDict('<plist><dict><key>a</key><string>&lt;&amp;&#65;&#x42;</string></dict></plist>')).toEqual({ a: '<&AB' });
  });

  it('root that is not a dict', () => {
    expectPlistError(
      '<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><array><string>a</string></array></plist>',
      /root is an <array>, expected <dict>/,
    );
    expectPlistError('<plist version="1.0"><string>a</string></plist>', /root is a <string>, expected <dict>/);
  });

  it('unparsable numbers', () => {
    expectPlistError('<plist><dict><key>n</key><integer>abc</integer></dict></plist>', /n is not a valid number/);
  });

  it('round-trips buildPlist output, <data> as Buffer', () => {
    const when = new Date('2024-01-02T03:04:05Z');
    const xml = buildPlist({ s: 'x', n: 7, r: 1.5, b: true, d: Buffer.from([1, 2, 3]), u: new Uint8Array([9]), t: when, a: [1, 'two'] });
    expect(xml).toContain('<data>AQID</data>');
    const back = parsePlistDict(xml);
    expect(back).toEqual({ s: 'x', n: 7, r: 1.5, b: true, d: Buffer.from([1, 2, 3]), u: Buffer.from([9]), t: when, a: [1, 'two'] });
    expect(Buffer.isBuffer(back.d)).toBe(true);
  });
});

describe('parseCheckIn rejects bad check-ins', () => {
  const auth = () => captureDict('Authenticate.1.plist');
  const token = () => captureDict('TokenUpdate.1.plist');

  it('missing UDID', () => {
    const d = auth();
    delete d.UDID;
    expectProtocolError(() => parseCheckIn(d), /^UDID: missing$/);
  });

  it('missing Token', () => {
    const d = token();
    delete d.Token;
    expectProtocolError(() => parseCheckIn(d), /^Token: missing$/);
  });

  it('Token not <data>', () => {
    const d = token();
    d.Token = 'R+juwGLC9ynsFwPBs+GPGXHYXwC+dkRdNAgLqnAbX1E=';
    expectProtocolError(() => parseCheckIn(d), /^Token: expected <data>, got a string$/);
  });

  it('missing PushMagic, wrong-typed AwaitingConfiguration and UnlockToken', () => {
    const d = token();
    delete d.PushMagic;
    expectProtocolError(() => parseCheckIn(d), /^PushMagic: missing$/);
    expectProtocolError(() => parseCheckIn({ ...token(), AwaitingConfiguration: 'false' }), /^AwaitingConfiguration: expected a boolean/);
    expectProtocolError(() => parseCheckIn({ ...token(), UnlockToken: 'x' }), /^UnlockToken: expected <data>/);
  });

  it('missing or wrong-typed Topic', () => {
    const d = auth();
    delete d.Topic;
    expectProtocolError(() => parseCheckIn(d), /^Topic: missing$/);
    expectProtocolError(() => parseCheckIn({ ...auth(), Topic: 5 }), /^Topic: expected a string, got an integer$/);
  });

  it('unknown MessageType', () => {
    expectProtocolError(() => parseCheckIn({ ...auth(), MessageType: 'Hello' }), /^unknown MessageType 'Hello'$/);
    const d = auth();
    delete d.MessageType;
    expectProtocolError(() => parseCheckIn(d), /^MessageType: missing$/);
  });

  it('MessageTypes this server does not serve', () => {
    for (const mt of ['GetBootstrapToken', 'SetBootstrapToken', 'DeclarativeManagement', 'GetToken']) {
      expectProtocolError(() => parseCheckIn({ ...auth(), MessageType: mt }), new RegExp(`^MessageType '${mt}' is not supported`));
    }
  });

  it('UserAuthenticate is read far enough to be declined (UDID and UserID)', () => {
    const msg = { MessageType: 'UserAuthenticate', UDID: 'U1', UserID: 'A1B2C3D4-0000-4000-8000-000000000001', DigestResponse: '' };
    expect(validateCheckIn(msg)).toEqual({ ok: true });
    expect(parseCheckIn(msg)).toEqual({ MessageType: 'UserAuthenticate', UDID: 'U1', UserID: msg.UserID });
    expectProtocolError(() => parseCheckIn({ MessageType: 'UserAuthenticate', UDID: 'U1' }), /^UserID: missing$/);
  });

  it('User Enrollment (EnrollmentID, no UDID)', () => {
    const d = token();
    delete d.UDID;
    d.EnrollmentID = 'F2B3C4D5-0000-4000-8000-000000000001';
    expectProtocolError(() => parseCheckIn(d), /User Enrollment \(EnrollmentID without UDID\) is not supported/);
  });

  it('CheckOut', () => {
    expect(parseCheckIn({ MessageType: 'CheckOut', Topic: 'com.apple.mgmt.X', UDID: 'u1', Extra: 1 })).toEqual({
      MessageType: 'CheckOut',
      Topic: 'com.apple.mgmt.X',
      UDID: 'u1',
    });
  });
});

describe('parseReport', () => {
  it('Idle needs no CommandUUID', () => {
    expect(parseReport({ UDID: 'u1', Status: 'Idle' })).toEqual({ UDID: 'u1', Status: 'Idle', result: {} });
  });

  it('report without CommandUUID on Acknowledged', () => {
    expectProtocolError(() => parseReport({ UDID: 'u1', Status: 'Acknowledged' }), /^CommandUUID: missing$/);
    expectProtocolError(() => parseReport({ UDID: 'u1', Status: 'NotNow' }), /^CommandUUID: missing$/);
  });

  it('unknown Status', () => {
    expectProtocolError(() => parseReport({ UDID: 'u1', Status: 'Done', CommandUUID: 'c' }), /^Status: unknown value 'Done'/);
    expectProtocolError(() => parseReport({ UDID: 'u1', CommandUUID: 'c' }), /^Status: missing$/);
  });

  it('missing UDID', () => {
    expectProtocolError(() => parseReport({ Status: 'Idle' }), /^UDID: missing$/);
  });

  it('Error with ErrorChain, result keys kept', () => {
    const r = parseReport({
      UDID: 'u1',
      Status: 'Error',
      CommandUUID: 'c1',
      ErrorChain: [{ ErrorCode: 12064, ErrorDomain: 'MCMDMErrorDomain', USEnglishDescription: 'Bad' }],
      Identifier: 'com.example.app',
      State: 'Failed',
    });
    expect(r.ErrorChain).toEqual([{ ErrorCode: 12064, ErrorDomain: 'MCMDMErrorDomain', USEnglishDescription: 'Bad' }]);
    expect(r.result).toEqual({ Identifier: 'com.example.app', State: 'Failed' });
  });

  it('malformed ErrorChain', () => {
    expectProtocolError(
      () => parseReport({ UDID: 'u1', Status: 'Error', CommandUUID: 'c', ErrorChain: [{ ErrorCode: '1', ErrorDomain: 'x' }] }),
      /^ErrorChain\[0\]\.ErrorCode: expected an integer, got a string$/,
    );
  });
});

describe('plist parse cost', () => {
  it('measures a typical check-in (informational, no assertion on time)', () => {
    const body = capture('TokenUpdate.1.plist');
    const small = capture('Authenticate.1.plist');
    const n = 2000;
    for (let i = 0; i < 200; i++) parseCheckIn(parsePlistDict(body));
    const measure = (b: Buffer, withCheckIn: boolean) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) {
        const d = parsePlistDict(b);
        if (withCheckIn) parseCheckIn(d);
      }
      return Number(process.hrtime.bigint() - t0) / 1000 / n;
    };
    const tokenUpdate = measure(body, false);
    const tokenUpdateFull = measure(body, true);
    const authenticate = measure(small, false);
    console.log(
      `plist parse: TokenUpdate.1 (${body.length} B) ${tokenUpdate.toFixed(1)} µs/op, with parseCheckIn ${tokenUpdateFull.toFixed(1)} µs/op; ` +
        `Authenticate.1 (${small.length} B) ${authenticate.toFixed(1)} µs/op (${n}×)`,
    );
    expect(parseCheckIn(parsePlistDict(body)).MessageType).toBe('TokenUpdate');
  });
});
