'use strict';
// App-like `wx` and `my` for the end-to-end tests: the platform's `request` is real HTTP
// (in each platform's style: WeChat calls success for every HTTP answer, Alipay calls fail
// with error 19 for a non-2xx one), and login and the payment sheets are the package's
// sandboxWallet, i.e. the sandbox minigate's /sandbox/wallet/login, requestPayment and
// tradePay. Every request is recorded.
const { sandboxWallet } = require('..');
const { httpJson } = require('./http');

function network(platform) {
  const record = { requests: [] };
  return {
    record,
    request(options) {
      const headers = options.header || options.headers || {};
      httpJson(options.method || 'GET', options.url, { body: options.data, headers, timeoutMs: options.timeout || 10_000 }).then((r) => {
        record.requests.push({ method: options.method, path: new URL(options.url).pathname, status: r.status, data: r.data });
        if (platform === 'wechat') {
          options.success({ statusCode: r.status, data: r.data, header: r.headers, errMsg: 'request:ok' });
        } else if (r.status >= 200 && r.status < 300) {
          options.success({ status: r.status, data: r.data, headers: r.headers });
        } else {
          options.fail({ error: 19, errorMessage: 'http status error', status: r.status, data: r.data, headers: r.headers });
        }
      }, (err) => (platform === 'wechat' ? options.fail({ errMsg: `request:fail ${err.message}` })
        : options.fail({ error: 12, errorMessage: err.message })));
    },
  };
}

/** `wx` (platform "wechat") or `my` ("alipay") paying in the sandbox wallet. */
function fakeApp(base, platform, { user = 'e2e-shopper', outcome = 'success' } = {}) {
  const net = network(platform);
  const app = sandboxWallet(net, { baseUrl: base, platform, user, outcome });
  const calls = (path) => net.record.requests.filter((r) => r.path === path);
  app.record = {
    get login() { return calls('/sandbox/wallet/login').length; },
    get sheets() { return calls(`/sandbox/wallet/${platform === 'wechat' ? 'requestPayment' : 'tradePay'}`).length; },
    get statusAnswers() { return net.record.requests.filter((r) => r.method === 'GET').map((r) => r.data && r.data.status); },
  };
  return app;
}

module.exports = { fakeApp, network };
