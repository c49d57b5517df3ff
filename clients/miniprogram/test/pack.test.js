'use strict';
// The package builds to a tarball with its code, types and README, and nothing else.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const path = require('node:path');

test('npm pack: index.js, index.d.ts, README.md and package.json', () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--offline', '--ignore-scripts'], {
    cwd: path.join(__dirname, '..'), encoding: 'utf8', timeout: 30_000,
  });
  const [pack] = JSON.parse(out);
  assert.equal(pack.name, 'minigate-miniprogram');
  assert.deepEqual(pack.files.map((f) => f.path).sort(), ['README.md', 'index.d.ts', 'index.js', 'package.json']);
  const manifest = require('../package.json');
  assert.equal(manifest.main, 'index.js');
  assert.equal(manifest.types, 'index.d.ts');
  assert.equal(manifest.dependencies, undefined, 'no runtime dependencies');
});
