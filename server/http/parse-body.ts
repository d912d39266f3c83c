import { z } from 'zod';
import { invalid } from '../errors.js';

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
