'use strict';
// Real HTTP for the end-to-end tests (Node's http module; only the test fakes use it).
const http = require('node:http');

/** One JSON request: resolves { status, data }, rejects on a transport error or timeout. */
function httpJson(method, url, { body, headers = {}, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body));
    const request = http.request(url, {
      method,
      // A fresh connection each time: a kept-alive socket that the server closed while idle
      // (uvicorn after 5 s) would fail the next request with "socket hang up".
      agent: false,
      headers: { accept: 'application/json', ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      timeout: timeoutMs,
    }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let data = text;
        try { data = JSON.parse(text); } catch { /* not JSON: keep the text */ }
        resolve({ status: response.statusCode, data, headers: response.headers });
      });
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error('timeout')));
    request.on('error', reject);
    if (payload !== undefined) request.write(payload);
    request.end();
  });
}

module.exports = { httpJson };
