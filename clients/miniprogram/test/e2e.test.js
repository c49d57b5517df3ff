'use strict';
// End to end: the helper with app-like fake `wx` / `my` against a real `minigate serve` in
// sandbox mode — every provider × channel row of `minigate demo`, then cancel, fail, a late
// notification, errors, and the sample merchant server.
const test = require('node:test');
const assert = require('node:assert/strict');
const { createClient, MinigateError } = require('..');
const { fakeApp, network } = require('../testing/apps');
const { sampleConfig, loadPayPage } = require('../testing/samples');
const { startSandbox, demoCases, minigateBin } = require('../testing/minigate');
const { httpJson } = require('../testing/http');

const MISSING = minigateBin() === null;
if (MISSING && process.env.CI) {
  throw new Error('the end-to-end tests need minigate: create .venv (pip install -e .) or set MINIGATE_BIN');
}
const skip = MISSING ? 'no minigate executable (.venv/bin/minigate or $MINIGATE_BIN)' : false;
const CONFIRM = { confirmTimeoutMs: 20_000, pollIntervalMs: 50, maxPollIntervalMs: 250 };

test('the mini program pays through minigate', { skip, timeout: 170_000 }, async (t) => {
  const sandbox = await startSandbox();
  t.after(() => sandbox.stop());

  function app(channel, options) {
    return fakeApp(sandbox.base, channel, options);
  }
  function client(channel, api, extra = {}) {
    return createClient({ baseUrl: sandbox.base, platform: channel, api, ...CONFIRM, ...extra });
  }
  async function order(fields) {
    return sandbox.createOrder({ channel: 'wechat', amount: '12.30', currency: 'NZD', provider: 'latipay', ...fields });
  }

  const cases = demoCases(sandbox.python);
  assert.ok(cases.length >= 6, 'every row of minigate demo');
  for (const row of cases) {
    await t.test(`${row.title} × ${row.channel}: paid, confirmed by minigate`, async () => {
      const created = await order({ channel: row.channel, provider: row.provider, amount: row.amount, currency: row.currency });
      const api = app(row.channel);
      const result = await client(row.channel, api).pay({ orderId: created.id, clientToken: created.client_token });
      assert.deepEqual({ status: result.status, orderId: result.orderId }, { status: 'paid', orderId: created.id });
      assert.equal(result.appResult, row.channel === 'wechat' ? 'requestPayment:ok' : '9000');
      assert.equal((await sandbox.merchantOrder(created.id)).status, 'paid');
      if (row.channel === 'wechat') assert.equal(api.record.login, 1, 'a fresh wx.login code');
    });
  }

  for (const channel of ['wechat', 'alipay']) {
    await t.test(`${channel}: the shopper cancels, then pays on a second try`, async () => {
      const created = await order({ channel });
      const api = app(channel, { outcome: 'cancel' });
      const pay = client(channel, api);
      const args = { orderId: created.id, clientToken: created.client_token };
      const cancelled = await pay.pay(args);
      assert.equal(cancelled.status, 'cancelled');
      assert.equal(cancelled.serverStatus, 'pending');
      assert.equal(cancelled.appResult, channel === 'wechat' ? 'requestPayment:fail cancel' : '6001');
      assert.equal((await sandbox.merchantOrder(created.id)).status, 'pending');
      api.outcome = 'success';
      assert.equal((await pay.pay(args)).status, 'paid');
    });

    await t.test(`${channel}: the payment fails in the app`, async () => {
      const created = await order({ channel });
      const result = await client(channel, app(channel, { outcome: 'fail' }))
        .pay({ orderId: created.id, clientToken: created.client_token });
      assert.equal(result.status, 'failed');
      assert.equal(result.serverStatus, 'pending', 'checked with minigate, which was not told it was paid');
      assert.equal(result.appResult, channel === 'wechat' ? 'requestPayment:fail payment declined by the bank' : '4000');
    });

    await t.test(`${channel}: a notification that arrives late: the helper keeps confirming`, async () => {
      const created = await order({ channel });
      const api = app(channel);
      // Provider notifications wait 150 simulated seconds (1.5 s at time_scale 0.01).
      await sandbox.notifications({ delay: 150 });
      let result;
      try {
        result = await client(channel, api).pay({ orderId: created.id, clientToken: created.client_token });
      } finally {
        await sandbox.notifications({ delay: 0 });
      }
      assert.equal(result.status, 'paid');
      assert.ok(api.record.statusAnswers.includes('pending'),
        `saw pending before paid: ${api.record.statusAnswers}`);
      assert.equal(api.record.statusAnswers.at(-1), 'paid');
    });

    await t.test(`${channel}: a notification later than the confirmation timeout ends "pending"`, async () => {
      const created = await order({ channel });
      await sandbox.notifications({ blackhole: true });
      let result;
      try {
        result = await client(channel, app(channel), { confirmTimeoutMs: 400 })
          .pay({ orderId: created.id, clientToken: created.client_token });
      } finally {
        await sandbox.notifications({ blackhole: false });
      }
      assert.equal(result.status, 'pending', 'the app said paid, minigate did not (yet)');
      assert.equal(result.serverStatus, 'pending');
    });

    await t.test(`${channel}: minigate's errors arrive typed`, async () => {
      const created = await order({ channel });
      await assert.rejects(client(channel, app(channel)).pay({ orderId: created.id, clientToken: 'ct_wrong' }), (err) => {
        assert.ok(err instanceof MinigateError);
        assert.deepEqual({ type: err.type, code: err.code, param: err.param, statusCode: err.statusCode },
          { type: 'authentication_error', code: 'invalid_client_token', param: 'client_token', statusCode: 401 });
        assert.match(err.message, /client_token/);
        return true;
      });
    });
  }

  await t.test('a second pay while one runs is the same promise: one payment sheet', async () => {
    const created = await order({ channel: 'wechat' });
    const api = app('wechat');
    const pay = client('wechat', api);
    const args = { orderId: created.id, clientToken: created.client_token };
    const first = pay.pay(args);
    assert.equal(pay.pay({ ...args }), first);
    assert.equal((await first).status, 'paid');
    assert.equal(api.record.sheets, 1);
    assert.equal(api.record.login, 1);
    // Paying an order that is paid already: minigate says so, no sheet.
    assert.equal((await pay.pay(args)).status, 'paid');
    assert.equal(api.record.sheets, 1);
  });

  await t.test('the sample merchant server: checkout, pay from the mini program, fulfilled by webhook', async () => {
    for (const channel of ['wechat', 'alipay']) {
      const checkout = await httpJson('POST', `${sandbox.shop}/checkout`, { body: { sku: 'flat-white', channel } });
      assert.equal(checkout.status, 200, JSON.stringify(checkout.data));
      assert.deepEqual(Object.keys(checkout.data).sort(), ['amount', 'client_token', 'currency', 'order_id', 'reference']);
      const { order_id: orderId, client_token: clientToken, reference } = checkout.data;
      const result = await client(channel, app(channel)).pay({ orderId, clientToken });
      assert.equal(result.status, 'paid');
      const merchantView = await sandbox.merchantOrder(orderId);
      assert.deepEqual([merchantView.amount, merchantView.currency, merchantView.merchant_reference], ['5.50', 'NZD', reference]);
      let shopOrder;
      for (let i = 0; i < 100; i += 1) { // the webhook is delivered in the background
        shopOrder = (await httpJson('GET', `${sandbox.shop}/orders/${reference}`)).data;
        if (shopOrder.fulfilled) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(shopOrder.fulfilled, true, 'order.paid webhook verified and applied');
    }
    const bad = await httpJson('POST', `${sandbox.shop}/hooks/minigate`, {
      body: '{"type":"order.paid"}', headers: { 'minigate-signature': `t=${Math.floor(Date.now() / 1000)},v1=00` },
    });
    assert.equal(bad.status, 400, 'an unsigned webhook is refused');
  });

  await t.test('the sample mini programs: cancel, then pay, through the sample merchant server', async () => {
    for (const platform of ['wechat', 'alipay']) {
      const config = { ...sampleConfig(platform), minigateUrl: sandbox.base, shopUrl: sandbox.shop };
      assert.equal(config.sandbox, true, 'the samples start in sandbox mode');
      const page = loadPayPage(platform, network(platform), config);
      page.onOutcome({ currentTarget: { dataset: { outcome: 'cancel' } } });
      await page.onPay();
      assert.deepEqual([page.data.status, page.data.busy], ['cancelled', false], page.data.message);
      assert.match(page.data.message, /cancelled/);
      assert.equal(page.data.price, '5.50 NZD');
      const orderId = page.order.order_id;
      page.onOutcome({ currentTarget: { dataset: { outcome: 'success' } } });
      await page.onPay();
      assert.equal(page.data.status, 'paid', page.data.message);
      assert.match(page.data.message, /^Paid/);
      assert.equal(page.order, null, 'the next tap is a new order');
      const merchantView = await sandbox.merchantOrder(orderId);
      assert.deepEqual([merchantView.status, merchantView.channel], ['paid', platform], 'the same order, paid on the second try');
    }
  });
});
