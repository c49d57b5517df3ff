/**
 * minigate-miniprogram: the mini program's side of a minigate payment.
 *
 * Runs inside the WeChat (`wx`) and Alipay (`my`) mini-program runtimes: CommonJS, no
 * dependencies, no Node APIs and no `fetch`. All I/O goes through the platform object's
 * `request`, `login` / `getAuthCode` and `requestPayment` / `tradePay`.
 *
 * The rule it keeps: what the app's payment sheet says is a hint, never the answer. A payment
 * is "paid" only when minigate says so (minigate only believes the provider's verified
 * notification or its own query of the provider).
 *
 * @module minigate-miniprogram
 */
'use strict';

/** @typedef {"wechat" | "alipay"} Platform */
/** @typedef {"paid" | "cancelled" | "failed" | "pending"} PayStatus */

/**
 * @typedef {object} ClientOptions
 * @property {string} baseUrl minigate's address as the mini program reaches it, e.g.
 *   `https://pay.example.com` (it must be on the mini program's request allow-list).
 * @property {Platform} platform `"wechat"` (uses `wx`) or `"alipay"` (uses `my`).
 * @property {object} [api] the platform object; defaults to the global `wx` / `my`.
 * @property {number} [confirmTimeoutMs=15000] how long to keep asking minigate for the final
 *   state after the payment sheet closed; then the result is `"pending"`.
 * @property {number} [pollIntervalMs=500] first wait between status checks; it grows by
 *   half each time up to `maxPollIntervalMs`.
 * @property {number} [maxPollIntervalMs=3000]
 * @property {number} [requestTimeoutMs=10000] timeout of each HTTP request.
 */

/**
 * @typedef {object} PayResult
 * @property {PayStatus} status
 * @property {string} orderId
 * @property {string | null} serverStatus the order status minigate reported last (e.g.
 *   `"paid"`, `"pending"`, `"closed"`), or null if it could not be asked.
 * @property {string | null} appResult what the app's payment sheet said (WeChat `errMsg`,
 *   Alipay `resultCode`), for logs only.
 */

var DEFAULTS = {
  confirmTimeoutMs: 15000,
  pollIntervalMs: 500,
  maxPollIntervalMs: 3000,
  requestTimeoutMs: 10000,
};

/** Order statuses after which polling stops without the order being paid. */
var DEAD = { closed: true, failed: true };

/**
 * An error with minigate's error shape: `{ error: { type, code, message, param? } }`.
 * Errors raised on the device (no network, the app refused an API) use the types
 * `network_error` and `platform_error`.
 */
class MinigateError extends Error {
  /**
   * @param {{type: string, code: string, message: string, param?: string | null,
   *   statusCode?: number | null}} fields
   */
  constructor(fields) {
    super(fields.message);
    this.name = 'MinigateError';
    this.type = fields.type;
    this.code = fields.code;
    this.param = fields.param == null ? null : fields.param;
    this.statusCode = fields.statusCode == null ? null : fields.statusCode;
  }
}

function fail(type, code, message, param) {
  return new MinigateError({ type: type, code: code, message: message, param: param });
}

function sleep(ms) {
  return new Promise(function (resolve) { setTimeout(resolve, ms); });
}

function parseBody(data) {
  if (typeof data !== 'string') return data;
  try { return JSON.parse(data); } catch (e) { return data; }
}

/** The message a platform callback gave (WeChat `errMsg`, Alipay `errorMessage`). */
function platformMessage(res) {
  if (!res) return 'unknown error';
  return String(res.errMsg || res.errorMessage || res.error || res.memo || 'unknown error');
}

/**
 * One HTTP request through `wx.request` / `my.request`: `{ status, data }`, rejecting only
 * when no HTTP answer arrived.
 */
function platformRequest(api, platform, method, url, body, timeout) {
  return new Promise(function (resolve, reject) {
    var headers = { 'content-type': 'application/json' };
    var options = {
      url: url,
      method: method,
      dataType: 'json',
      timeout: timeout,
      success: function (res) {
        resolve({
          status: platform === 'wechat' ? res.statusCode : res.status,
          data: parseBody(res.data),
        });
      },
      fail: function (err) {
        // Alipay reports a non-2xx answer through `fail` (error 19) with the answer attached.
        if (platform === 'alipay' && err && typeof err.status === 'number' && err.status > 0) {
          resolve({ status: err.status, data: parseBody(err.data) });
          return;
        }
        reject(fail('network_error', 'request_failed', method + ' ' + url + ': ' +
          platformMessage(err)));
      },
    };
    if (body !== undefined) options.data = JSON.stringify(body);
    if (platform === 'wechat') options.header = headers; else options.headers = headers;
    api.request(options);
  });
}

/** Calls `api[name](params)` and settles with whichever callback fires. */
function callback(api, name, params) {
  return new Promise(function (resolve) {
    var options = {};
    var key;
    for (key in params) {
      if (Object.prototype.hasOwnProperty.call(params, key)) options[key] = params[key];
    }
    options.success = function (res) { resolve({ ok: true, res: res || {} }); };
    options.fail = function (res) { resolve({ ok: false, res: res || {} }); };
    api[name](options);
  });
}

function requireString(value, name) {
  if (typeof value !== 'string' || value.length === 0) {
    throw fail('invalid_request_error', 'missing_argument', name + ' is required', name);
  }
}

/**
 * Create a client for one minigate.
 *
 * @param {ClientOptions} options
 */
function createClient(options) {
  if (!options || typeof options.baseUrl !== 'string' || !/^https?:\/\//.test(options.baseUrl)) {
    throw fail('invalid_request_error', 'invalid_base_url',
      'baseUrl must be an http(s) URL', 'baseUrl');
  }
  var platform = options.platform;
  if (platform !== 'wechat' && platform !== 'alipay') {
    throw fail('invalid_request_error', 'invalid_platform',
      'platform must be "wechat" or "alipay"', 'platform');
  }
  /* global wx, my */
  var api = options.api ||
    (platform === 'wechat' ? (typeof wx !== 'undefined' ? wx : undefined)
      : (typeof my !== 'undefined' ? my : undefined));
  if (!api) {
    throw fail('platform_error', 'platform_unavailable',
      'no ' + (platform === 'wechat' ? 'wx' : 'my') + ' object: run inside the mini program or pass options.api',
      'api');
  }
  var base = options.baseUrl.replace(/\/+$/, '');
  var cfg = {};
  Object.keys(DEFAULTS).forEach(function (name) {
    var value = options[name];
    cfg[name] = typeof value === 'number' && value >= 0 ? value : DEFAULTS[name];
  });
  /** @type {Object<string, Promise<PayResult>>} */
  var running = {};

  function orderUrl(orderId) {
    return base + '/v1/client/orders/' + encodeURIComponent(orderId);
  }

  /** minigate's JSON answer, or a MinigateError carrying its error shape. */
  function call(method, url, body) {
    return platformRequest(api, platform, method, url, body, cfg.requestTimeoutMs)
      .then(function (answer) {
        var data = answer.data;
        if (answer.status >= 200 && answer.status < 300 && data && typeof data === 'object') {
          return data;
        }
        var error = data && typeof data === 'object' && data.error;
        if (error && typeof error === 'object') {
          throw new MinigateError({ type: String(error.type || 'api_error'),
            code: String(error.code || 'http_' + answer.status),
            message: String(error.message || 'HTTP ' + answer.status),
            param: error.param, statusCode: answer.status });
        }
        throw new MinigateError({ type: 'api_error', code: 'http_' + answer.status,
          message: 'unexpected answer from minigate (HTTP ' + answer.status + ')',
          statusCode: answer.status });
      });
  }

  function status(args) {
    requireString(args && args.orderId, 'orderId');
    requireString(args && args.clientToken, 'clientToken');
    return call('GET', orderUrl(args.orderId) + '?client_token=' +
      encodeURIComponent(args.clientToken));
  }

  function loginCode() {
    return callback(api, 'login', { timeout: cfg.requestTimeoutMs }).then(function (r) {
      if (!r.ok || !r.res.code) {
        throw fail('platform_error', 'login_failed', 'wx.login: ' + platformMessage(r.res));
      }
      return r.res.code;
    });
  }

  function alipayAuthCode() {
    return callback(api, 'getAuthCode', { scopes: 'auth_base' }).then(function (r) {
      if (!r.ok || !r.res.authCode) {
        throw fail('platform_error', 'login_failed', 'my.getAuthCode: ' + platformMessage(r.res));
      }
      return r.res.authCode;
    });
  }

  /** POST .../pay: the params for the payment sheet (or a MinigateError). */
  async function requestParams(args) {
    var body = { client_token: args.clientToken };
    if (platform === 'wechat') body.login_code = await loginCode();
    try {
      return await call('POST', orderUrl(args.orderId) + '/pay', body);
    } catch (err) {
      if (!(err instanceof MinigateError)) throw err;
      // Alipay orders need no login code unless the order's provider says it does.
      if (platform === 'alipay' && err.code === 'missing_login_code') {
        body.login_code = await alipayAuthCode();
        return call('POST', orderUrl(args.orderId) + '/pay', body);
      }
      // A code is single-use and short-lived: one more try with a fresh one.
      if (platform === 'wechat' && err.code === 'invalid_login_code') {
        body.login_code = await loginCode();
        return call('POST', orderUrl(args.orderId) + '/pay', body);
      }
      throw err;
    }
  }

  function result(statusValue, args, serverStatus, appResult) {
    return { status: statusValue, orderId: args.orderId,
      serverStatus: serverStatus == null ? null : serverStatus,
      appResult: appResult == null ? null : String(appResult) };
  }

  /**
   * Ask minigate until it has the final word or the time is up. A server error that will not
   * go away by asking again (wrong token, unknown order) is thrown; anything else is retried.
   */
  async function confirm(args, appResult) {
    var deadline = Date.now() + cfg.confirmTimeoutMs;
    var wait = cfg.pollIntervalMs;
    var last = null;
    for (;;) {
      try {
        var order = await status(args);
        last = order.status;
        if (order.paid === true) return result('paid', args, last, appResult);
        if (DEAD[order.status]) return result('failed', args, last, appResult);
      } catch (err) {
        var retryable = err instanceof MinigateError && (err.type === 'network_error' ||
          (err.statusCode != null && (err.statusCode >= 500 || err.statusCode === 429)));
        if (!retryable) throw err;
      }
      var left = deadline - Date.now();
      if (left <= 0) return result('pending', args, last, appResult);
      await sleep(Math.min(wait, left));
      wait = Math.min(Math.ceil(wait * 1.5), cfg.maxPollIntervalMs);
    }
  }

  /**
   * The sheet said it did not pay: ask minigate once (a payment can still have gone through)
   * and report `outcome` unless minigate says paid.
   */
  async function checkOnce(args, outcome, appResult) {
    try {
      var order = await status(args);
      return result(order.paid === true ? 'paid' : outcome, args, order.status, appResult);
    } catch (err) {
      return result(outcome, args, null, appResult);
    }
  }

  async function payWechat(args, params) {
    var sheet = await callback(api, 'requestPayment', params);
    var message = platformMessage(sheet.res);
    if (sheet.ok) return confirm(args, message);
    // "requestPayment:fail cancel": the shopper closed the sheet.
    if (/:fail cancel$/.test(message)) return checkOnce(args, 'cancelled', message);
    return checkOnce(args, 'failed', message);
  }

  async function payAlipay(args, params) {
    var sheet = await callback(api, 'tradePay', params);
    var code = sheet.res.resultCode == null ? '' : String(sheet.res.resultCode);
    switch (code) {
      case '9000': // paid, by the app's word: confirm
      case '8000': // processing, outcome unknown (may have been paid)
      case '6004': // outcome unknown (may have been paid)
        return confirm(args, code);
      case '6001': // the shopper cancelled
      case '99': // the shopper left the sheet ("forgot password")
        return checkOnce(args, 'cancelled', code);
      case '6002':
        throw fail('network_error', 'alipay_network_error',
          'my.tradePay: network error (6002); check the connection and pay again');
      default: // 4000 and anything else
        return checkOnce(args, 'failed', code || platformMessage(sheet.res));
    }
  }

  async function runPay(args) {
    var answer;
    try {
      answer = await requestParams(args);
    } catch (err) {
      // Paid already (by an earlier attempt): minigate's word, so it is the answer.
      if (err instanceof MinigateError && err.code === 'order_already_paid') {
        return result('paid', args, null, null);
      }
      throw err;
    }
    var params = answer[platform];
    if (!params || typeof params !== 'object') {
      throw fail('invalid_request_error', 'channel_mismatch', 'this order is for ' +
        (answer.channel || 'another channel') + ', not ' + platform, 'platform');
    }
    return platform === 'wechat' ? payWechat(args, params) : payAlipay(args, params);
  }

  /**
   * Pay an order the merchant's server created. Resolves with the confirmed outcome; rejects
   * with a MinigateError when the payment could not be started (or Alipay's 6002).
   *
   * @param {{orderId: string, clientToken: string}} args
   * @returns {Promise<PayResult>}
   */
  function pay(args) {
    try {
      requireString(args && args.orderId, 'orderId');
      requireString(args && args.clientToken, 'clientToken');
    } catch (err) {
      return Promise.reject(err);
    }
    var key = args.orderId;
    if (running[key]) return running[key];
    var own = { orderId: args.orderId, clientToken: args.clientToken };
    var promise = runPay(own).then(function (value) {
      delete running[key];
      return value;
    }, function (err) {
      delete running[key];
      throw err;
    });
    running[key] = promise;
    return promise;
  }

  return {
    platform: platform,
    baseUrl: base,
    pay: pay,
    /**
     * The order's status as minigate knows it: `{ id, status, paid }`.
     * @param {{orderId: string, clientToken: string}} args
     */
    status: function (args) {
      try { return status(args); } catch (err) { return Promise.reject(err); }
    },
  };
}

/**
 * A stand-in for the app's login and payment sheet, to try a mini program against a sandbox
 * minigate (`minigate serve` with no provider credentials) in the developer tools: `login`
 * gets a code from the sandbox wallet, `requestPayment` / `tradePay` pay in the simulated
 * wallet (which checks the signature and makes the provider's simulator notify minigate),
 * and `request` is the platform's own. Pass it as `createClient`'s `api`. Set `outcome`
 * to `"cancel"` or `"fail"` to play a shopper who does not pay. Nothing is really paid
 * through it: never use it in a release.
 *
 * @param {object} api the platform object (`wx` or `my`)
 * @param {{baseUrl: string, platform: Platform, user?: string,
 *   outcome?: "success" | "cancel" | "fail", requestTimeoutMs?: number}} options
 */
function sandboxWallet(api, options) {
  var base = String(options.baseUrl).replace(/\/+$/, '') + '/sandbox/wallet/';
  var platform = options.platform;
  var timeout = options.requestTimeoutMs || DEFAULTS.requestTimeoutMs;
  var user = options.user || 'sandbox-shopper';

  function post(path, body) {
    return platformRequest(api, platform, 'POST', base + path, body, timeout);
  }

  function params(callOptions) {
    var copy = {};
    Object.keys(callOptions).forEach(function (key) {
      if (typeof callOptions[key] !== 'function') copy[key] = callOptions[key];
    });
    copy.outcome = wallet.outcome;
    return copy;
  }

  var wallet = {
    outcome: options.outcome || 'success',
    request: function (callOptions) { return api.request(callOptions); },
    login: function (callOptions) {
      post('login', { user: user }).then(function (answer) {
        if (answer.status === 200 && answer.data && answer.data.code) {
          callOptions.success({ code: answer.data.code, errMsg: 'login:ok' });
        } else {
          callOptions.fail({ errMsg: 'login:fail sandbox wallet answered ' + answer.status });
        }
      }, function (err) { callOptions.fail({ errMsg: 'login:fail ' + err.message }); });
    },
    getAuthCode: function (callOptions) {
      callOptions.fail({ error: 11, errorMessage: 'the sandbox wallet has no Alipay login' });
    },
    requestPayment: function (callOptions) {
      post('requestPayment', params(callOptions)).then(function (answer) {
        var res = answer.data && typeof answer.data === 'object' ? answer.data
          : { errMsg: 'requestPayment:fail sandbox wallet answered ' + answer.status };
        if (res.errMsg === 'requestPayment:ok') callOptions.success(res); else callOptions.fail(res);
      }, function (err) { callOptions.fail({ errMsg: 'requestPayment:fail ' + err.message }); });
    },
    tradePay: function (callOptions) {
      post('tradePay', params(callOptions)).then(function (answer) {
        var res = answer.data && typeof answer.data === 'object' ? answer.data : {};
        callOptions.success({ resultCode: String(res.resultCode || '4000'), memo: res.memo || '' });
      }, function (err) { callOptions.success({ resultCode: '6002', memo: err.message }); });
    },
  };
  return wallet;
}

module.exports = { createClient: createClient, MinigateError: MinigateError, sandboxWallet: sandboxWallet };
