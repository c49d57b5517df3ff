'use strict';
// Loads a sample mini program's pay page (examples/miniprogram-*/pages/pay/pay.js) the way
// the runtime does: a bare context with `Page`, the platform object and a `require` that
// knows only the helper package and the sample's config.
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const helper = require('..');

const EXAMPLES = path.resolve(__dirname, '..', '..', '..', 'examples');

const SAMPLES = {
  wechat: { dir: path.join(EXAMPLES, 'miniprogram-wechat'), global: 'wx', files: ['js', 'json', 'wxml', 'wxss'], bind: /bindtap="(\w+)"/g },
  alipay: { dir: path.join(EXAMPLES, 'miniprogram-alipay'), global: 'my', files: ['js', 'json', 'axml', 'acss'], bind: /onTap="(\w+)"/g },
};

function evaluate(file, globals) {
  const module = { exports: {} };
  const context = vm.createContext({ module, exports: module.exports, console, setTimeout, clearTimeout, ...globals });
  vm.runInContext(fs.readFileSync(file, 'utf8'), context, { filename: file });
  return module.exports;
}

/** The sample's config.js, evaluated. */
function sampleConfig(platform) {
  return evaluate(path.join(SAMPLES[platform].dir, 'config.js'), {});
}

/** A page instance of the sample's pay page, with `setData` merging into `data`. */
function loadPayPage(platform, api, config) {
  const sample = SAMPLES[platform];
  let definition = null;
  const requireShim = (name) => {
    if (name === 'minigate-miniprogram') return helper;
    if (name === '../../config') return config;
    throw new Error(`the sample requires ${name}, which a mini program would not have`);
  };
  evaluate(path.join(sample.dir, 'pages', 'pay', 'pay.js'), {
    require: requireShim, [sample.global]: api, Page: (def) => { definition = def; },
  });
  const page = Object.create(definition);
  page.data = { ...definition.data };
  page.setData = (patch) => Object.assign(page.data, patch);
  return page;
}

module.exports = { SAMPLES, sampleConfig, loadPayPage };
