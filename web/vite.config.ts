import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The admin page is built once (npm run build:web) into dist/web/, which server/http/web-page.ts serves:
// no CDN and no bundler at run time.
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here('.'),
  base: '/',
  publicDir: false,
  build: { outDir: here('../dist/web'), emptyOutDir: true, target: 'es2022', assetsInlineLimit: 0 },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
});
