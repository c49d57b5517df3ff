'use strict';
// Fake `wx` and `my` that behave like the WeChat and Alipay apps against a sandbox minigate:
// `request` is real HTTP, `login` gets a code from the sandbox wallet, and the payment sheets
// are the sandbox wallet's requestPayment / tradePay (which check the signatures and, on
// success, make the provider simulator send its notification). `outcome` says what the
// shopper does in the sheet: "success", "cancel" or "fail".
const { httpJson } = require('./http');

function headersOf(options) {
  return options.header || options.headers || {};
}

/** The bit of the real `wx.request` / `my.request` the helper relies on. */
function send(options) {
  return httpJson(options.method || 'GET', options.url, {
    body: options.data, headers: headersOf(options), timeoutMs: options.timeout || 10_000,
  });
}

function fakeWechatApp(base, { user = 'e2e-shopper', outcome = 'success' } = {}) {
  const record = { login: 0, requestPayment: 0, statusAnswers: [] };
  const wx = {
    record,
    outcome,
    login(options) {
      record.login += 1;
      httpJson('POST', `${base}/sandbox/wallet/login`, { body: { user } }).then(
        (r) => (r.status === 200 ? options.success({ code: r.data.code, errMsg: 'login:ok' }) : options.fail({ errMsg: `login:fail ${r.status}` })),
        (err) => options.fail({ errMsg: `login:fail ${err.message}` }));
    },
    request(options) {
      send(options).then((r) => {
        if (options.method === 'GET') record.statusAnswers.push(r.data && r.data.status);
        options.success({ statusCode: r.status, data: r.data, header: r.headers, errMsg: 'request:ok' });
      }, (err) => options.fail({ errMsg: `request:fail ${err.message}` }));
    },
    requestPayment(options) {
      record.requestPayment += 1;
      const { success, fail, ...params } = options;
      httpJson('POST', `${base}/sandbox/wallet/requestPayment`, { body: { ...params, outcome: wx.outcome } }).then(
        (r) => (r.data.errMsg === 'requestPayment:ok' ? success(r.data) : fail(r.data)),
        (err) => fail({ errMsg: `requestPayment:fail ${err.message}` }));
    },
  };
  return wx;
}

function fakeAlipayApp(base, { outcome = 'success' } = {}) {
  const record = { tradePay: 0, statusAnswers: [] };
  const my = {
    record,
    outcome,
    getAuthCode(options) {
      options.fail({ error: 11, errorMessage: 'the sandbox has no Alipay login' });
    },
    request(options) {
      send(options).then((r) => {
        if (options.method === 'GET') record.statusAnswers.push(r.data && r.data.status);
        if (r.status >= 200 && r.status < 300) options.success({ status: r.status, data: r.data, headers: r.headers });
        else options.fail({ error: 19, errorMessage: 'http status error', status: r.status, data: r.data, headers: r.headers });
      }, (err) => options.fail({ error: 12, errorMessage: err.message }));
    },
    tradePay(options) {
      record.tradePay += 1;
      const { success, fail, ...params } = options;
      httpJson('POST', `${base}/sandbox/wallet/tradePay`, { body: { ...params, outcome: my.outcome } }).then(
        (r) => success({ resultCode: r.data.resultCode, memo: r.data.memo }),
        () => fail({ resultCode: '6002', memo: 'network error' }));
    },
  };
  return my;
}

module.exports = { fakeWechatApp, fakeAlipayApp };
