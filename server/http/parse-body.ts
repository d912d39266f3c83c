import { z } from 'zod';
import { invalid } from '../errors.js';

/** Validate a JSON body once, at the boundary, into a typed object. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  // PostgreSQL text cannot hold NUL: refuse it here rather than fail at the database.
  if (JSON.stringify(body ?? {}).includes('\\u0000')) throw invalid('NUL characters (\\u0000) are not allowed in the body', 'invalid_body');
  const result = schema.safeParse(body ?? {});
  if (!result.success) {
    const detail = result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'body'}: ${i.message}`).join('; ');
    throw invalid(detail, 'invalid_body');
  }
  return result.data;
}
