import express from 'express';
import { z } from 'zod';
import { invalid } from '../errors.js';

// The JSON boundary: bodies are parsed with a nesting limit, then validated once into typed objects.

/** Deeper than any body the API takes (a command's payload is a few levels), shallow enough for every recursive walk. */
export const MAX_JSON_DEPTH = 64;

/** Whether the JSON text nests arrays and objects deeper than `max`; one pass, no recursion. */
export function nestsDeeperThan(text: Buffer, max: number): boolean {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (const byte of text) {
    if (inString) {
      if (escaped) escaped = false;
      else if (byte === 0x5c) escaped = true;
      else if (byte === 0x22) inString = false;
    } else if (byte === 0x22) inString = true;
    else if (byte === 0x7b || byte === 0x5b) { if (++depth > max) return true; }
    else if (byte === 0x7d || byte === 0x5d) depth--;
  }
  return false;
}

/**
 * express.json that refuses deep nesting before parsing: JSON.parse copes, but JSON.stringify, zod and every
 * other recursive walk of the value would overflow the stack and answer 500.
 */
export function jsonBody(limit: string) {
  return express.json({
    limit,
    verify: (_req, _res, buf) => {
      if (nestsDeeperThan(buf, MAX_JSON_DEPTH)) {
        throw Object.assign(new Error(`JSON nested deeper than ${MAX_JSON_DEPTH} levels`), { status: 400, type: 'json.too.deep' });
      }
    },
  });
}

/** Validate a JSON body once, at the boundary, into a typed object. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  return parseInput(schema, body, 'body');
}

/**
 * Validate one part of a request (its body, query or path parameters) once, at the boundary. A missing
 * body is {}; a refusal names the field and is the client's error (invalid_body, invalid_query, invalid_path).
 */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, where: 'body' | 'query' | 'path'): z.infer<S> {
  // PostgreSQL text cannot hold NUL: refuse it here rather than fail at the database.
  if (JSON.stringify(value ?? {}).includes('\\u0000')) throw invalid(`NUL characters (\\u0000) are not allowed in the ${where}`, `invalid_${where}`);
  const result = schema.safeParse(value ?? {});
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : where}: ${i.message}`).join('; ');
    throw invalid(detail, `invalid_${where}`);
  }
  return result.data;
}
