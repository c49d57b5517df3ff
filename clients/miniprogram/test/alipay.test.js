'use strict';
// The helper on Alipay, against a fake `my` and an in-memory minigate: every resultCode of
// my.tradePay (9000, 8000, 6004, 6001, 99, 4000, 6002, others).
const test = require('node:test');
const assert = require('node:assert/strict');
const { createClient, MinigateError } = require('..');
const { fakeMinigate, fakeMy, ok, order, errorAnswer } = require('../testing/fakes');

const ORDER_STR = 'service=create_forex_trade_wap&partner=2088000000000000&out_trade_no=S1&sign=abc';
const ARGS = { orderId: 'ord_1', clientToken: 'ct_1' };
const FAST = { confirmTimeoutMs: 200, pollIntervalMs: 1, maxPollIntervalMs: 5 };

function payOk() {
  return ok({ order_id: 'ord_1', provider: 'latipay', channel: 'alipay', alipay: { orderStr: ORDER_STR } });
}

function setup({ statuses = [order('pending')], pay = payOk, code, viaFail = false } = {}) {
  const server = fakeMinigate({ pay, statuses });
  const my = fakeMy({ server, sheet: () => ({ ok: !viaFail, res: { resultCode: code, memo: '' } }) });
  const client = createClient({ baseUrl: 'https://pay.example.com', platform: 'alipay', api: my, ...FAST });
  const gets = () => server.calls.filter((c) => c.method === 'GET');
  return { server, my, client, gets };
}

test('9000: no login code, tradePay with exactly { orderStr }, then confirmed paid', async () => {
  const { server, my, client, gets } = setup({ code: '9000', statuses: [order('pending'), order('paid')] });
  const result = await client.pay(ARGS);
  assert.deepEqual(result, { status: 'paid', orderId: 'ord_1', serverStatus: 'paid', appResult: '9000' });
  assert.deepEqual(server.calls[0].body, { client_token: 'ct_1' });
  assert.deepEqual(my.record.getAuthCode, []);
  assert.deepEqual(my.record.tradePay, [{ orderStr: ORDER_STR }]);
  assert.equal(gets().length, 2);
  assert.equal(my.record.requests[0].headers['content-type'], 'application/json');
});

test('a tradeNO from minigate is passed as it is', async () => {
  const { my, client } = setup({ code: '9000', statuses: [order('paid')], pay: () => ok({ channel: 'alipay', alipay: { tradeNO: '2026abc' } }) });
  assert.equal((await client.pay(ARGS)).status, 'paid');
  assert.deepEqual(my.record.tradePay, [{ tradeNO: '2026abc' }]);
});

test('9000 is not paid until minigate says so: pending at the timeout', async () => {
  const { client } = setup({ code: '9000' });
  const result = await client.pay(ARGS);
  assert.equal(result.status, 'pending');
  assert.equal(result.appResult, '9000');
});

test('a numeric resultCode (older base libraries) is read the same', async () => {
  const { client } = setup({ code: 9000, statuses: [order('paid')] });
  assert.equal((await client.pay(ARGS)).status, 'paid');
});

test('8000 and 6004 (outcome unknown): confirmed with minigate', async () => {
  for (const code of ['8000', '6004']) {
    const paid = setup({ code, statuses: [order('pending'), order('paid')] });
    assert.equal((await paid.client.pay(ARGS)).status, 'paid', code);
    assert.equal(paid.gets().length, 2);
    const unknown = setup({ code });
    assert.equal((await unknown.client.pay(ARGS)).status, 'pending', code);
  }
});

test('6001 (the shopper cancelled) and 99 (left the sheet): cancelled', async () => {
  for (const code of ['6001', '99']) {
    const { client, gets } = setup({ code });
    const result = await client.pay(ARGS);
    assert.deepEqual(result, { status: 'cancelled', orderId: 'ord_1', serverStatus: 'pending', appResult: code });
    assert.equal(gets().length, 1);
  }
});

test('a resultCode arriving through fail is read the same', async () => {
  const { client } = setup({ code: '6001', viaFail: true });
  assert.equal((await client.pay(ARGS)).status, 'cancelled');
});

test('4000 (failed) and unknown codes: failed after a check', async () => {
  for (const code of ['4000', '7777']) {
    const { client, gets } = setup({ code });
    const result = await client.pay(ARGS);
    assert.equal(result.status, 'failed', code);
    assert.equal(result.appResult, code);
    assert.equal(gets().length, 1);
  }
});

test('4000 that minigate reports paid: paid', async () => {
  const { client } = setup({ code: '4000', statuses: [order('paid')] });
  assert.equal((await client.pay(ARGS)).status, 'paid');
});

test('6002 (network error): a network_error MinigateError, the shopper may pay again', async () => {
  const { client } = setup({ code: '6002' });
  await assert.rejects(client.pay(ARGS), (err) => err instanceof MinigateError && err.type === 'network_error' &&
    err.code === 'alipay_network_error');
});

test('a provider that needs a login code: my.getAuthCode, then the pay call again', async () => {
  let n = 0;
  const { server, my, client } = setup({
    code: '9000', statuses: [order('paid')],
    pay: () => (++n === 1 ? errorAnswer(400, 'invalid_request_error', 'missing_login_code', 'login_code is required', 'login_code') : payOk()),
  });
  assert.equal((await client.pay(ARGS)).status, 'paid');
  assert.deepEqual(my.record.getAuthCode, ['auth_base']);
  const posts = server.calls.filter((c) => c.method === 'POST');
  assert.deepEqual(posts.map((c) => c.body), [{ client_token: 'ct_1' }, { client_token: 'ct_1', login_code: 'auth-1' }]);
});

test('a non-2xx answer (my.request fail, error 19) is minigate\'s typed error', async () => {
  const { my, client } = setup({ pay: () => errorAnswer(409, 'invalid_request_error', 'order_expired', 'order has expired') });
  await assert.rejects(client.pay(ARGS), { type: 'invalid_request_error', code: 'order_expired', message: 'order has expired', statusCode: 409 });
  assert.equal(my.record.tradePay.length, 0);
});

test('a WeChat order paid from Alipay: channel_mismatch', async () => {
  const { client } = setup({ pay: () => ok({ channel: 'wechat', wechat: { package: 'prepay_id=x' } }) });
  await assert.rejects(client.pay(ARGS), { code: 'channel_mismatch' });
});
