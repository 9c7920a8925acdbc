// Bundles src/main.js (and the OpenTelemetry web SDK from node_modules) with esbuild and copies
// the static files next to it. usage: node build.mjs [outdir]   (default: dist)
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] || path.join(here, 'dist'));

await mkdir(outdir, { recursive: true });
await build({
  entryPoints: [path.join(here, 'src', 'main.js')],
  bundle: true,
  minify: true,
  sourcemap: true,
  // es2016 lowers async/await to generators over Promise, which zone.js patches: the trace
  // context then survives every await (native async functions would lose it).
  target: ['es2016'],
  format: 'iife',
  outfile: path.join(outdir, 'app.js'),
  legalComments: 'linked',
  logLevel: 'warning',
});
for (const name of ['index.html', 'styles.css']) {
  await copyFile(path.join(here, 'public', name), path.join(outdir, name));
}
console.log('frontend bundle written to ' + outdir);
