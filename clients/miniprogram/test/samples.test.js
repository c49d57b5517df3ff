'use strict';
// The sample mini programs are complete projects: every page in app.json has its files, the
// template's handlers exist on the page, and the config names both servers.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { SAMPLES, sampleConfig, loadPayPage } = require('../testing/samples');

for (const [platform, sample] of Object.entries(SAMPLES)) {
  test(`${platform} sample: pages, handlers, config, dependency on this package`, () => {
    const app = JSON.parse(fs.readFileSync(path.join(sample.dir, 'app.json'), 'utf8'));
    assert.deepEqual(app.pages, ['pages/pay/pay']);
    for (const page of app.pages) {
      for (const ext of sample.files) {
        assert.ok(fs.existsSync(path.join(sample.dir, `${page}.${ext}`)), `${page}.${ext}`);
      }
    }
    const config = sampleConfig(platform);
    assert.deepEqual(Object.keys(config).sort(), ['minigateUrl', 'sandbox', 'shopUrl']);
    const page = loadPayPage(platform, { request() {} }, config);
    const template = fs.readFileSync(path.join(sample.dir, `pages/pay/pay.${sample.files[2]}`), 'utf8');
    const handlers = [...template.matchAll(sample.bind)].map((m) => m[1]);
    assert.ok(handlers.includes('onPay'));
    for (const name of handlers) assert.equal(typeof page[name], 'function', name);
    const manifest = JSON.parse(fs.readFileSync(path.join(sample.dir, 'package.json'), 'utf8'));
    assert.equal(manifest.dependencies['minigate-miniprogram'], 'file:../../clients/miniprogram');
    const projectFile = platform === 'wechat' ? 'project.config.json' : 'mini.project.json';
    JSON.parse(fs.readFileSync(path.join(sample.dir, projectFile), 'utf8'));
  });
}
