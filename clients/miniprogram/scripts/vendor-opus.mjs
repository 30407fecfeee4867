// Copies the Opus codec the example uses from npm into vendor/opusscript/: WeChat runs
// only the files of the mini-program's folder (no node_modules at run time), so the
// codec is vendored, and this script is how the copy is made and checked.
//
//   cd clients/miniprogram && npm ci && npm run vendor        # (re)make the copy
//   cd clients/miniprogram && npm ci && npm run vendor:check  # the copy is npm's, byte for byte
//
// What is copied: opusscript's pure-JavaScript build of libopus (emscripten without
// WebAssembly: a mini-program on iOS has no WebAssembly, and WXWebAssembly cannot load
// the wasm build's loader), its MIT licence, and libopus's BSD licence (COPYING.libopus).
// opusscript's index.js is not copied: it needs Node's Buffer; lib/opus.js replaces it.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(dirname(fileURLToPath(import.meta.url)));
const SOURCE = join(HERE, 'node_modules', 'opusscript');
const TARGET = join(HERE, 'vendor', 'opusscript');
const FILES = [
  ['build/opusscript_native_nasm.js', 'opusscript_native_nasm.js'],
  ['LICENSE', 'LICENSE'],
  ['build/COPYING.libopus', 'COPYING.libopus'],
];

const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');

if (!existsSync(join(SOURCE, 'package.json'))) {
  console.error('node_modules/opusscript is missing: run `npm ci` in clients/miniprogram first');
  process.exit(2);
}
const upstream = JSON.parse(readFileSync(join(SOURCE, 'package.json'), 'utf8'));
const manifest = {
  name: 'opusscript-vendored',
  private: true,
  // The file is CommonJS (module.exports); the example's own package is "type": "module".
  type: 'commonjs',
  main: 'opusscript_native_nasm.js',
  license: 'MIT AND BSD-3-Clause',
  vendored: {
    from: `${upstream.name}@${upstream.version}`,
    by: 'clients/miniprogram/scripts/vendor-opus.mjs',
    sha256: Object.fromEntries(FILES.map(([from, to]) => [to, sha256(join(SOURCE, from))])),
  },
};

if (process.argv.includes('--check')) {
  const problems = [];
  for (const [from, to] of FILES) {
    if (!existsSync(join(TARGET, to))) problems.push(`${to} is missing`);
    else if (sha256(join(TARGET, to)) !== sha256(join(SOURCE, from))) problems.push(`${to} differs from npm's ${from}`);
  }
  const kept = existsSync(join(TARGET, 'package.json')) ? readFileSync(join(TARGET, 'package.json'), 'utf8') : '';
  if (kept !== `${JSON.stringify(manifest, null, 2)}\n`) problems.push('package.json does not match (run npm run vendor)');
  if (problems.length) {
    console.error(`vendor/opusscript is not ${manifest.vendored.from}:\n- ${problems.join('\n- ')}`);
    process.exit(1);
  }
  console.log(`vendor/opusscript is ${manifest.vendored.from}, byte for byte`);
} else {
  mkdirSync(TARGET, { recursive: true });
  for (const [from, to] of FILES) copyFileSync(join(SOURCE, from), join(TARGET, to));
  writeFileSync(join(TARGET, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  console.log(`copied ${manifest.vendored.from} into vendor/opusscript/`);
}
