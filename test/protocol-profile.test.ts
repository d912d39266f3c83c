// The enrollment profile (mdm/profile.ts) and its payloads against Apple's profile schemas.
import { describe, expect, it } from 'vitest';
import { validateProfilePayload } from '../mdm/apple-schema.js';
import { parsePlistDict } from '../mdm/plist.js';
import { buildEnrollmentProfile, ProfileError } from '../mdm/profile.js';
import { errorsOf } from './support/protocol.js';

describe('enrollment profile', () => {
  const pkcs12 = Buffer.from('3082010a0201033082', 'hex');
  const opts = {
    pkcs12,
    pkcs12Password: 'secret',
    topic: 'com.apple.mgmt.External.e0bd1eac-1f17-4c8e-8a63-dd17d3dd35d9',
    serverURL: 'https://mdm.example.com/mdm/connect',
    checkInURL: 'https://mdm.example.com/mdm/checkin',
    organization: 'Example School',
    identifier: 'com.example.mdm.enroll',
  };

  it('is a Configuration profile whose payloads validate against Apple’s schemas', () => {
    const { plist, profileUUID, identityUUID } = buildEnrollmentProfile(opts);
    const profile = parsePlistDict(plist);
    expect(profile).toMatchObject({
      PayloadType: 'Configuration',
      PayloadVersion: 1,
      PayloadUUID: profileUUID,
      PayloadIdentifier: 'com.example.mdm.enroll',
      PayloadDisplayName: expect.any(String),
    });
    const content = profile.PayloadContent as Array<Record<string, unknown>>;
    expect(content.map((p) => p.PayloadType)).toEqual(['com.apple.security.pkcs12', 'com.apple.mdm']);
    const [identity, mdm] = content;
    expect(identity.PayloadUUID).toBe(identityUUID);
    expect(identity.PayloadContent).toEqual(pkcs12);
    expect(identity.Password).toBe('secret');
    expect(mdm).toMatchObject({
      IdentityCertificateUUID: identityUUID,
      Topic: opts.topic,
      ServerURL: opts.serverURL,
      CheckInURL: opts.checkInURL,
      SignMessage: true,
      CheckOutWhenRemoved: true,
      AccessRights: 8191,
    });
    expect(mdm).not.toHaveProperty('ServerCapabilities');
    expect(new Set([profileUUID, identityUUID, mdm.PayloadUUID]).size).toBe(3);
    expect(validateProfilePayload(identity)).toEqual({ ok: true });
    expect(validateProfilePayload(mdm)).toEqual({ ok: true });
  });

  it('gives each profile fresh UUIDs', () => {
    const a = buildEnrollmentProfile(opts);
    const b = buildEnrollmentProfile(opts);
    expect(a.profileUUID).not.toBe(b.profileUUID);
    expect(a.identityUUID).not.toBe(b.identityUUID);
  });

  it('refuses a topic that is not an MDM push topic', () => {
    expect(() => buildEnrollmentProfile({ ...opts, topic: 'com.example.push' })).toThrow(ProfileError);
  });
});

describe('validateProfilePayload rejects', () => {
  const mdm = {
    PayloadType: 'com.apple.mdm',
    PayloadVersion: 1,
    PayloadIdentifier: 'com.example.mdm',
    PayloadUUID: '8C1E2B55-3D2B-4B1F-9E0A-6E6A2C1D0F11',
    IdentityCertificateUUID: '1C1E2B55-3D2B-4B1F-9E0A-6E6A2C1D0F11',
    Topic: 'com.apple.mgmt.External.x',
    ServerURL: 'https://mdm.example.com/mdm/connect',
  };

  it('missing required keys (payload and common)', () => {
    expect(validateProfilePayload(mdm)).toEqual({ ok: true });
    const { Topic: _t, PayloadUUID: _u, ...rest } = mdm;
    expect(errorsOf(validateProfilePayload(rest)).sort()).toEqual(['PayloadUUID: required key missing', 'Topic: required key missing']);
  });

  it('format, type and unknown-key violations', () => {
    expect(errorsOf(validateProfilePayload({ ...mdm, ServerURL: 'http://mdm.example.com' }))).toEqual([
      'ServerURL: does not match format ^https://.*$',
    ]);
    expect(errorsOf(validateProfilePayload({ ...mdm, AccessRights: '8191', Bogus: 1 })).sort()).toEqual([
      'AccessRights: expected <integer>, got <string>',
      "Bogus: unknown key (not declared in Apple's schema)",
    ]);
    expect(errorsOf(validateProfilePayload({ ...mdm, ServerCapabilities: ['com.apple.mdm.nope'] }))).toEqual([
      expect.stringMatching(/^ServerCapabilities\[0\]: expected one of com\.apple\.mdm\.per-user-connections,/),
    ]);
    expect(
      errorsOf(validateProfilePayload({ PayloadType: 'com.apple.security.pkcs12', PayloadVersion: 1, PayloadIdentifier: 'a', PayloadUUID: 'b', PayloadContent: 'base64' })),
    ).toEqual(['PayloadContent: expected <data>, got <string>']);
    expect(errorsOf(validateProfilePayload({ PayloadType: 'com.apple.wifi.managed' }))).toEqual([
      "PayloadType: no schema for 'com.apple.wifi.managed'",
    ]);
  });

  it('SCEP subject pairs have exactly two items', () => {
    const scep = (subject: unknown) => ({
      PayloadType: 'com.apple.security.scep',
      PayloadVersion: 1,
      PayloadIdentifier: 'com.example.scep',
      PayloadUUID: 'u',
      PayloadContent: { URL: 'https://scep.example.com', Keysize: 2048, Subject: subject },
    });
    expect(validateProfilePayload(scep([[['CN', 'device']], [['O', 'Example']]]))).toEqual({ ok: true });
    expect(errorsOf(validateProfilePayload(scep([[['CN']]])))).toEqual(['PayloadContent.Subject[0][0]: expected at least 2 items, got 1']);
  });
});
