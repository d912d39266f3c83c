// `node --import tsx --import ./test/support/record-modules.mjs main.ts`: appends the file URL of every module
// the process resolves to $RECORD_MODULES_FILE, one a line. Registered after tsx, so its hook runs first and
// records what tsx resolved (the .ts file behind a .js specifier).
import { register } from 'node:module';

const hooks = `
import fs from 'node:fs';
let file;
export function initialize(data) { file = data.file; }
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (resolved.url.startsWith('file:')) fs.appendFileSync(file, resolved.url + '\\n');
  return resolved;
}`;

register(`data:text/javascript,${encodeURIComponent(hooks)}`, { data: { file: process.env.RECORD_MODULES_FILE } });
