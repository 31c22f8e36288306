#!/usr/bin/env node
// Speaks the two parts of the native solc command line that py-solc-x, Slither and forge
// use (`--version` and `--standard-json`), backed by the npm `solc` (wasm) compiler.
'use strict';
const fs = require('fs');
const path = require('path');

const projectRoot = process.env.ESCROW_PROJECT_ROOT || path.resolve(__dirname, '..', '..');
const moduleDirs = [
  process.env.ESCROW_NODE_MODULES,
  path.join(projectRoot, 'node_modules'),
  path.join(process.cwd(), 'node_modules'),
].filter(Boolean);

function loadSolc() {
  for (const dir of moduleDirs) {
    try {
      return require(require.resolve('solc', { paths: [path.dirname(dir)] }));
    } catch (e) { /* try the next place */ }
  }
  process.stderr.write('solc-shim: npm package "solc" not found; run `npm ci` in ' + projectRoot + '\n');
  process.exit(2);
}

const args = process.argv.slice(2);
const solc = loadSolc();

if (args.includes('--version')) {
  process.stdout.write('solc, the solidity compiler commandline interface\nVersion: ' + solc.version() + '\n');
  process.exit(0);
}

const searchRoots = [process.cwd()];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--base-path' || args[i] === '--include-path' || args[i] === '--allow-paths') {
    for (const p of String(args[i + 1] || '').split(',')) if (p) searchRoots.push(path.resolve(p));
    i++;
  } else if (args[i].startsWith('--base-path=') || args[i].startsWith('--include-path=')) {
    searchRoots.push(path.resolve(args[i].split('=')[1]));
  }
}
searchRoots.push(projectRoot);
for (const dir of moduleDirs) searchRoots.push(dir);

function findImports(importPath) {
  const candidates = path.isAbsolute(importPath)
    ? [importPath]
    : searchRoots.map((root) => path.join(root, importPath));
  for (const candidate of candidates) {
    try {
      return { contents: fs.readFileSync(candidate, 'utf8') };
    } catch (e) { /* next */ }
  }
  return { error: 'File not found: ' + importPath };
}

if (!args.includes('--standard-json')) {
  process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
  process.exit(2);
}

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  let input = Buffer.concat(chunks).toString('utf8');
  // Tools that build their own standard JSON (Slither's crytic-compile) cannot ask for viaIR;
  // the project's contracts need it, so SOLC_SHIM_VIA_IR=1 adds it with the optimizer on.
  if (process.env.SOLC_SHIM_VIA_IR === '1') {
    const parsed = JSON.parse(input);
    parsed.settings = parsed.settings || {};
    parsed.settings.viaIR = true;
    parsed.settings.optimizer = Object.assign({ enabled: true, runs: 200 },
                                              parsed.settings.optimizer || {}, { enabled: true });
    input = JSON.stringify(parsed);
  }
  process.stdout.write(solc.compile(input, { import: findImports }));
});
