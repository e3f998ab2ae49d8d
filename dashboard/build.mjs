// Bundles the dashboard into dist/: app.js + app.css (uPlot included) and index.html.
// Usage: npm ci && npm run build
import { build } from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

const result = await build({
  entryPoints: { app: join(root, 'src', 'app.js') },
  outdir: dist,
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2020',
  platform: 'browser',
  // uPlot is MIT: its notice travels with the bundle.
  legalComments: 'eof',
  logLevel: 'warning',
  metafile: true,
});

await copyFile(join(root, 'src', 'index.html'), join(dist, 'index.html'));
await copyFile(join(root, 'src', 'favicon.svg'), join(dist, 'favicon.svg'));

for (const [file, info] of Object.entries(result.metafile.outputs)) {
  console.log(`${file}  ${(info.bytes / 1024).toFixed(1)} KiB`);
}
console.log('dist/index.html, dist/favicon.svg');
