'use strict';
// The helper as a mini-program runtime loads it: index.js evaluated in a bare JavaScript
// context that has only what WeChat / Alipay give a mini program (the platform object,
// timers, console, module/exports): no require, process, Buffer or fetch. The context's
// timers and clock are ours, which also shows the confirmation backoff exactly.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { fakeMinigate, fakeWx, order, ok } = require('../testing/fakes');

const SOURCE = fs.readFileSync(path.join(__dirname, '..', 'index.js'), 'utf8');

function load(globals) {
  const module = { exports: {} };
  const context = vm.createContext({ module, exports: module.exports, console, ...globals });
  vm.runInContext(SOURCE, context, { filename: 'index.js' });
  return module.exports;
}

test('uses no Node API and no fetch (only what a mini program has)', () => {
  for (const name of ['require(', 'process.', 'Buffer', 'fetch(', 'globalThis', 'XMLHttpRequest']) {
    assert.ok(!SOURCE.includes(name), `index.js mentions ${name}`);
  }
});

test('pays through the global wx in a bare context, backing off between checks', async () => {
  let now = 1_000_000;
  const waits = [];
  const server = fakeMinigate({
    pay: () => ok({ channel: 'wechat', wechat: { package: 'prepay_id=1', paySign: 's' } }),
    statuses: [order('pending'), order('pending'), order('pending'), order('pending'), order('pending'), order('paid')],
  });
  const wx = fakeWx({ server, sheet: () => ({ ok: true, res: { errMsg: 'requestPayment:ok' } }) });
  const FakeDate = { now: () => now };
  const setTimeout = (fn, ms) => { waits.push(ms); now += ms; setImmediate(fn); return waits.length; };
  const { createClient } = load({ wx, setTimeout, Date: FakeDate });
  // No api option: the helper finds the global `wx` itself.
  const client = createClient({ baseUrl: 'https://pay.example.com', platform: 'wechat', pollIntervalMs: 400,
    maxPollIntervalMs: 1000, confirmTimeoutMs: 60_000 });
  const result = await client.pay({ orderId: 'ord_1', clientToken: 't' });
  assert.equal(result.status, 'paid');
  assert.deepEqual(waits, [400, 600, 900, 1000, 1000]);
});

test('gives up at the timeout with "pending", never sleeping past it', async () => {
  let now = 0;
  const waits = [];
  const server = fakeMinigate({ pay: () => ok({ channel: 'wechat', wechat: { package: 'prepay_id=1' } }), statuses: [order('pending')] });
  const wx = fakeWx({ server, sheet: () => ({ ok: true, res: { errMsg: 'requestPayment:ok' } }) });
  const setTimeout = (fn, ms) => { waits.push(ms); now += ms; setImmediate(fn); };
  const { createClient } = load({ wx, setTimeout, Date: { now: () => now } });
  const client = createClient({ baseUrl: 'https://x', platform: 'wechat', pollIntervalMs: 1000, maxPollIntervalMs: 4000, confirmTimeoutMs: 5000 });
  const result = await client.pay({ orderId: 'ord_1', clientToken: 't' });
  assert.equal(result.status, 'pending');
  assert.deepEqual(waits, [1000, 1500, 2250, 250]);
  assert.equal(now, 5000);
});

test('finds the global my on Alipay', () => {
  const my = { request() {} };
  const { createClient } = load({ my, setTimeout });
  assert.equal(createClient({ baseUrl: 'https://x', platform: 'alipay' }).platform, 'alipay');
  assert.throws(() => createClient({ baseUrl: 'https://x', platform: 'wechat' }), /no wx object/);
});
