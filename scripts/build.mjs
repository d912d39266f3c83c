// `npm run build`: compiles the server (and the sandbox with the simulator it loads on --sandbox) to dist/,
// and copies the files it reads at run time: the SQL migrations and Apple's MDM schema YAML. The admin page
// is built on its own (npm run build:web) into dist/web/.
// `node scripts/build.mjs --if-stale` (npm start's prestart) builds only when a source is newer than dist/.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(REPO, 'dist');
const STAMP = path.join(DIST, '.built');
const SOURCES = ['main.ts', 'server', 'mdm', 'vpp', 'sandbox', 'simulator', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json'];
const ASSETS = [path.join('server', 'storage', 'migrations'), path.join('mdm', 'apple-schema')];

function newestSourceMs() {
  let newest = 0;
  const visit = (p) => {
    const st = fs.statSync(p);
    if (st.isDirectory()) for (const f of fs.readdirSync(p)) visit(path.join(p, f));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const s of SOURCES) if (fs.existsSync(path.join(REPO, s))) visit(path.join(REPO, s));
  return newest;
}

if (process.argv.includes('--if-stale') && fs.existsSync(STAMP) && fs.statSync(STAMP).mtimeMs >= newestSourceMs()) process.exit(0);

// What this build writes; dist/web (the admin page, npm run build:web) is left as it is.
for (const out of ['main.js', 'main.js.map', 'server', 'mdm', 'vpp', 'sandbox', 'simulator', '.built']) fs.rmSync(path.join(DIST, out), { recursive: true, force: true });
execFileSync(process.execPath, [path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(REPO, 'tsconfig.build.json')], { stdio: 'inherit' });
for (const asset of ASSETS) fs.cpSync(path.join(REPO, asset), path.join(DIST, asset), { recursive: true });
fs.writeFileSync(STAMP, `${new Date().toISOString()}\n`);
console.error(`built ${path.relative(process.cwd(), DIST) || 'dist'}/`);
