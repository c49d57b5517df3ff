'use strict';
// The helper on WeChat, against a fake `wx` and an in-memory minigate: every outcome.
const test = require('node:test');
const assert = require('node:assert/strict');
const { createClient, MinigateError } = require('..');
const { fakeMinigate, fakeWx, ok, order, errorAnswer, network } = require('../testing/fakes');

const PARAMS = {
  appId: 'wx0000000000000001', timeStamp: '1764300000', nonceStr: 'n0nce',
  package: 'prepay_id=wx28abc', signType: 'MD5', paySign: 'ABCDEF',
};
const ARGS = { orderId: 'ord_1', clientToken: 'ct_secret/+=' };
const FAST = { confirmTimeoutMs: 200, pollIntervalMs: 1, maxPollIntervalMs: 5 };

function payOk() {
  return ok({ order_id: 'ord_1', provider: 'latipay', channel: 'wechat', wechat: { ...PARAMS } });
}

function setup({ statuses = [order('pending')], pay = payOk, sheet, login, options = {} } = {}) {
  const server = fakeMinigate({ pay, statuses });
  const wx = fakeWx({ server, login, sheet: sheet || (() => ({ ok: true, res: { errMsg: 'requestPayment:ok' } })) });
  const client = createClient({ baseUrl: 'https://pay.example.com/', platform: 'wechat', api: wx, ...FAST, ...options });
  const gets = () => server.calls.filter((c) => c.method === 'GET');
  return { server, wx, client, gets };
}

test('success: fresh login code, exactly the returned params, paid once minigate says so', async () => {
  const { server, wx, client, gets } = setup({ statuses: [order('pending'), order('pending'), order('paid')] });
  const result = await client.pay(ARGS);
  assert.deepEqual(result, { status: 'paid', orderId: 'ord_1', serverStatus: 'paid', appResult: 'requestPayment:ok' });
  assert.equal(wx.record.login, 1);
  const post = server.calls[0];
  assert.equal(post.method, 'POST');
  assert.equal(post.path, '/v1/client/orders/ord_1/pay');
  assert.deepEqual(post.body, { client_token: 'ct_secret/+=', login_code: 'code-1' });
  assert.deepEqual(wx.record.requestPayment, [PARAMS]);
  assert.equal(gets().length, 3);
  for (const get of gets()) {
    assert.equal(get.path, '/v1/client/orders/ord_1');
    assert.deepEqual(get.query, { client_token: 'ct_secret/+=' });
  }
  assert.equal(wx.record.requests[0].header['content-type'], 'application/json');
});

test('the app saying ok is never taken as paid: minigate still pending ends "pending"', async () => {
  const { client, gets } = setup({ statuses: [order('pending')] });
  const result = await client.pay(ARGS);
  assert.equal(result.status, 'pending');
  assert.equal(result.serverStatus, 'pending');
  assert.ok(gets().length >= 2, 'kept asking until the timeout');
});

test('every paid state counts as paid (refunded later, paid after close)', async () => {
  for (const status of ['partially_refunded', 'refunded', 'paid_after_close']) {
    const { client } = setup({ statuses: [order(status)] });
    const result = await client.pay(ARGS);
    assert.equal(result.status, 'paid', status);
    assert.equal(result.serverStatus, status);
  }
});

test('closed or failed on the server after the sheet said ok: failed', async () => {
  for (const status of ['closed', 'failed']) {
    const { client, gets } = setup({ statuses: [order('pending'), order(status)] });
    const result = await client.pay(ARGS);
    assert.equal(result.status, 'failed');
    assert.equal(result.serverStatus, status);
    assert.equal(gets().length, 2);
  }
});

test('"requestPayment:fail cancel": cancelled, after one check with minigate', async () => {
  const { client, gets } = setup({ sheet: () => ({ ok: false, res: { errMsg: 'requestPayment:fail cancel' } }) });
  const result = await client.pay(ARGS);
  assert.deepEqual(result, { status: 'cancelled', orderId: 'ord_1', serverStatus: 'pending', appResult: 'requestPayment:fail cancel' });
  assert.equal(gets().length, 1);
});

test('a cancel that minigate reports paid after all: paid', async () => {
  const { client } = setup({ statuses: [order('paid')], sheet: () => ({ ok: false, res: { errMsg: 'requestPayment:fail cancel' } }) });
  assert.equal((await client.pay(ARGS)).status, 'paid');
});

test('any other fail: failed, after a check with minigate', async () => {
  const { client, gets } = setup({ sheet: () => ({ ok: false, res: { errMsg: 'requestPayment:fail payment declined' } }) });
  const result = await client.pay(ARGS);
  assert.equal(result.status, 'failed');
  assert.equal(result.appResult, 'requestPayment:fail payment declined');
  assert.equal(gets().length, 1);
});

test('a fail whose check cannot reach minigate: still failed, not an error', async () => {
  const { client } = setup({ statuses: [network()], sheet: () => ({ ok: false, res: { errMsg: 'requestPayment:fail x' } }) });
  const result = await client.pay(ARGS);
  assert.equal(result.status, 'failed');
  assert.equal(result.serverStatus, null);
});

test('minigate refusing the pay call: a MinigateError with its type, code, message, param', async () => {
  const { wx, client } = setup({
    pay: () => errorAnswer(401, 'authentication_error', 'invalid_client_token', 'client_token does not match this order', 'client_token'),
  });
  await assert.rejects(client.pay(ARGS), (err) => {
    assert.ok(err instanceof MinigateError);
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'MinigateError');
    assert.equal(err.type, 'authentication_error');
    assert.equal(err.code, 'invalid_client_token');
    assert.equal(err.message, 'client_token does not match this order');
    assert.equal(err.param, 'client_token');
    assert.equal(err.statusCode, 401);
    return true;
  });
  assert.equal(wx.record.requestPayment.length, 0, 'no payment sheet without params');
});

test('an answer without the error shape is still a typed error', async () => {
  const { client } = setup({ pay: () => ({ status: 502, data: '<html>bad gateway</html>' }) });
  await assert.rejects(client.pay(ARGS), { name: 'MinigateError', type: 'api_error', code: 'http_502', statusCode: 502 });
});

test('order already paid (an earlier attempt went through): paid, no sheet', async () => {
  const { wx, client } = setup({ pay: () => errorAnswer(409, 'invalid_request_error', 'order_already_paid', 'order is already paid') });
  const result = await client.pay(ARGS);
  assert.equal(result.status, 'paid');
  assert.equal(wx.record.requestPayment.length, 0);
});

test('an order that is closed cannot be paid: the error is passed on', async () => {
  const { client } = setup({ pay: () => errorAnswer(409, 'invalid_request_error', 'order_closed', 'order is closed') });
  await assert.rejects(client.pay(ARGS), { type: 'invalid_request_error', code: 'order_closed', param: null, statusCode: 409 });
});

test('wx.login failing: platform_error login_failed, minigate never asked', async () => {
  const { server, client } = setup({ login: () => ({ ok: false, res: { errMsg: 'login:fail auth deny' } }) });
  await assert.rejects(client.pay(ARGS), { type: 'platform_error', code: 'login_failed', message: 'wx.login: login:fail auth deny' });
  assert.equal(server.calls.length, 0);
});

test('no network for the pay call: network_error', async () => {
  const { client } = setup({ pay: () => network() });
  await assert.rejects(client.pay(ARGS), (err) => err instanceof MinigateError && err.type === 'network_error' &&
    err.code === 'request_failed' && /request:fail timeout/.test(err.message));
});

test('confirmation rides out network errors and 5xx answers', async () => {
  const unavailable = errorAnswer(503, 'api_error', 'database_unavailable', 'retry');
  const { client, gets } = setup({ statuses: [network(), unavailable, order('pending'), order('paid')] });
  const result = await client.pay(ARGS);
  assert.equal(result.status, 'paid');
  assert.equal(gets().length, 4);
});

test('confirmation stops on an error asking again cannot fix', async () => {
  const { client } = setup({ statuses: [errorAnswer(401, 'authentication_error', 'invalid_client_token', 'no', 'client_token')] });
  await assert.rejects(client.pay(ARGS), { code: 'invalid_client_token', statusCode: 401 });
});

test('an alipay order paid from WeChat: channel_mismatch', async () => {
  const { wx, client } = setup({ pay: () => ok({ order_id: 'ord_1', channel: 'alipay', alipay: { orderStr: 'a=b' } }) });
  await assert.rejects(client.pay(ARGS), { code: 'channel_mismatch', param: 'platform' });
  assert.equal(wx.record.requestPayment.length, 0);
});

test('a second pay for the same order while one runs returns the same promise', async () => {
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  const { server, wx, client } = setup({ statuses: [order('paid')], sheet: () => ({ ok: true, res: { errMsg: 'requestPayment:ok' } }) });
  const originalLogin = wx.login;
  wx.login = (options) => gate.then(() => originalLogin(options));
  const first = client.pay(ARGS);
  const second = client.pay({ ...ARGS });
  assert.equal(first, second);
  const other = client.pay({ orderId: 'ord_2', clientToken: 't2' });
  assert.notEqual(other, first);
  release();
  assert.equal((await first).status, 'paid');
  await other;
  const third = client.pay(ARGS);
  assert.notEqual(third, first, 'a finished pay is not reused');
  await third;
  assert.equal(server.calls.filter((c) => c.path === '/v1/client/orders/ord_1/pay').length, 2);
});

test('a failed pay is forgotten too: the next call starts again', async () => {
  let n = 0;
  const { client } = setup({
    statuses: [order('paid')],
    pay: () => (++n === 1 ? network() : payOk()),
  });
  await assert.rejects(client.pay(ARGS), { type: 'network_error' });
  assert.equal((await client.pay(ARGS)).status, 'paid');
});

test('arguments are checked before anything is sent', async () => {
  const { server, client } = setup();
  await assert.rejects(client.pay({ orderId: 'ord_1' }), { type: 'invalid_request_error', code: 'missing_argument', param: 'clientToken' });
  await assert.rejects(client.pay({ orderId: '', clientToken: 'x' }), { param: 'orderId' });
  await assert.rejects(client.pay(), { param: 'orderId' });
  await assert.rejects(client.status({ orderId: 'x' }), { param: 'clientToken' });
  assert.equal(server.calls.length, 0);
});

test('status(): the order as minigate knows it', async () => {
  const { client, gets } = setup({ statuses: [order('pending')] });
  assert.deepEqual(await client.status(ARGS), { id: 'ord_1', status: 'pending', paid: false });
  assert.equal(gets()[0].path, '/v1/client/orders/ord_1');
});

test('createClient checks its options', () => {
  const api = {};
  assert.throws(() => createClient({ platform: 'wechat', api }), { code: 'invalid_base_url', param: 'baseUrl' });
  assert.throws(() => createClient({ baseUrl: 'ftp://x', platform: 'wechat', api }), { code: 'invalid_base_url' });
  assert.throws(() => createClient({ baseUrl: 'https://x', platform: 'web', api }), { code: 'invalid_platform' });
  assert.throws(() => createClient({ baseUrl: 'https://x', platform: 'wechat' }), { type: 'platform_error', code: 'platform_unavailable' });
  const client = createClient({ baseUrl: 'https://x//', platform: 'alipay', api });
  assert.equal(client.baseUrl, 'https://x');
  assert.equal(client.platform, 'alipay');
});

test('a login code minigate calls invalid: one more try with a fresh code, then the error', async () => {
  const invalid = () => errorAnswer(400, 'invalid_request_error', 'invalid_login_code', 'login code is invalid', 'login_code');
  let n = 0;
  const once = setup({ statuses: [order('paid')], pay: () => (++n === 1 ? invalid() : payOk()) });
  assert.equal((await once.client.pay(ARGS)).status, 'paid');
  assert.deepEqual(once.server.calls.filter((c) => c.method === 'POST').map((c) => c.body.login_code), ['code-1', 'code-2']);
  const always = setup({ pay: invalid });
  await assert.rejects(always.client.pay(ARGS), { code: 'invalid_login_code', param: 'login_code' });
  assert.equal(always.wx.record.login, 2, 'no endless retries');
});

test('a bug under the helper (request throwing) is not mistaken for a passing network problem', async () => {
  const { wx, client } = setup({ statuses: [order('pending')] });
  const request = wx.request;
  wx.request = (options) => {
    if (options.method === 'GET') throw new TypeError('request is broken');
    return request(options);
  };
  await assert.rejects(client.pay(ARGS), { name: 'TypeError', message: 'request is broken' });
});
