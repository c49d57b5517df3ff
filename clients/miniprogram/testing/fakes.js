'use strict';
// Fake `wx` / `my` objects for unit tests: `request` goes to an in-memory minigate (a
// function of method, path, query and body), the payment sheets answer as scripted, and
// every call is recorded so tests can check what the helper did.

function later(fn) {
  setImmediate(fn);
}

/**
 * An in-memory minigate. `pay` answers POST .../pay (a function of the body, returning
 * { status, data }); `statuses` is the list of answers to GET .../orders/{id}, the last one
 * repeated.
 */
function fakeMinigate({ pay, statuses }) {
  const calls = [];
  const queue = statuses.slice();
  function handle(method, url, body) {
    const u = new URL(url);
    calls.push({ method, path: u.pathname, query: Object.fromEntries(u.searchParams), body });
    if (method === 'POST' && /\/pay$/.test(u.pathname)) return pay(body, calls);
    if (method === 'GET') return queue.length > 1 ? queue.shift() : queue[0];
    return { status: 404, data: { error: { type: 'invalid_request_error', code: 'not_found', message: 'no route' } } };
  }
  return { handle, calls };
}

function ok(data) {
  return { status: 200, data };
}

function order(status) {
  const paid = ['paid', 'partially_refunded', 'refunded', 'paid_after_close'].includes(status);
  return ok({ id: 'ord_1', status, paid });
}

function errorAnswer(status, type, code, message, param) {
  const error = { type, code, message };
  if (param) error.param = param;
  return { status, data: { error } };
}

function network() {
  return { network: true };
}

function decode(options) {
  return options.data === undefined ? undefined : JSON.parse(options.data);
}

/** A payment sheet: records the params it was given, answers as `sheet(params)` says. */
function paymentSheet(calls, sheet, options) {
  const { success, fail, ...params } = options;
  calls.push(params);
  const answer = sheet(params);
  later(() => (answer.ok ? success(answer.res) : fail(answer.res)));
}

/** A fake `wx`. `sheet(params)` returns { ok, res } for requestPayment. */
function fakeWx({ server, sheet, login }) {
  const record = { login: 0, requestPayment: [], requests: [] };
  const wx = {
    record,
    login(options) {
      record.login += 1;
      const answer = login ? login(record.login) : { ok: true, res: { code: 'code-' + record.login, errMsg: 'login:ok' } };
      later(() => (answer.ok ? options.success(answer.res) : options.fail(answer.res)));
    },
    request(options) {
      record.requests.push(options);
      const answer = server.handle(options.method, options.url, decode(options));
      later(() => {
        if (answer.network) options.fail({ errMsg: 'request:fail timeout' });
        else options.success({ statusCode: answer.status, data: answer.data, header: {}, errMsg: 'request:ok' });
      });
    },
    requestPayment(options) {
      paymentSheet(record.requestPayment, sheet, options);
    },
  };
  return wx;
}

/** A fake `my`. `sheet(params)` returns { ok, res } for tradePay. */
function fakeMy({ server, sheet, authCode }) {
  const record = { getAuthCode: [], tradePay: [], requests: [] };
  const my = {
    record,
    getAuthCode(options) {
      record.getAuthCode.push(options.scopes);
      later(() => options.success({ authCode: authCode || 'auth-1' }));
    },
    request(options) {
      record.requests.push(options);
      const answer = server.handle(options.method, options.url, decode(options));
      later(() => {
        if (answer.network) options.fail({ error: 12, errorMessage: 'network error' });
        else if (answer.status >= 200 && answer.status < 300) {
          options.success({ status: answer.status, data: answer.data, headers: {} });
        } else {
          // Alipay's way: a non-2xx answer is error 19, with the answer attached.
          options.fail({ error: 19, errorMessage: 'http status error', status: answer.status, data: answer.data, headers: {} });
        }
      });
    },
    tradePay(options) {
      paymentSheet(record.tradePay, sheet, options);
    },
  };
  return my;
}

module.exports = { fakeMinigate, fakeWx, fakeMy, ok, order, errorAnswer, network };
