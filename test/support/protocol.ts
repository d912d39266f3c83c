// Shared by the protocol tests: the real device captures (test/fixtures/device-captures, MIT) and helpers
// that expect a typed error with a given message.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { validateCommand } from '../../mdm/apple-schema.js';
import { ProtocolError } from '../../mdm/messages.js';
import { parsePlistDict, PlistError } from '../../mdm/plist.js';

export const CAPTURES = fileURLToPath(new URL('../fixtures/device-captures/', import.meta.url));
export const captureFiles = readdirSync(CAPTURES).filter((f) => f.endsWith('.plist')).sort();
export const capture = (name: string) => readFileSync(CAPTURES + name);
export const captureDict = (name: string) => parsePlistDict(capture(name));

export function expectPlistError(body: Buffer | string, message: RegExp) {
  let caught: unknown;
  try {
    parsePlistDict(body);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(PlistError);
  expect((caught as Error).message).toMatch(message);
}

export function expectProtocolError(fn: () => unknown, message: RegExp) {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ProtocolError);
  expect((caught as Error).message).toMatch(message);
}

export function errorsOf(r: ReturnType<typeof validateCommand>): string[] {
  return r.ok ? [] : r.errors;
}
