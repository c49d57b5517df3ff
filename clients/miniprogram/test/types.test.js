'use strict';
// index.d.ts is hand-written: check it names exactly what index.js exports and returns.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const helper = require('..');

const DTS = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8');

function members(interfaceName) {
  const match = DTS.match(new RegExp(`export interface ${interfaceName} \\{([\\s\\S]*?)\\n\\}`));
  assert.ok(match, `interface ${interfaceName} in index.d.ts`);
  return [...match[1].matchAll(/^\s+(?:readonly\s+)?(\w+)\??[:(]/gm)].map((m) => m[1]).sort();
}

test('the .d.ts declares exactly the runtime exports', () => {
  const declared = [...DTS.matchAll(/^export (?:declare )?(?:function|class|const) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, Object.keys(helper).sort());
  assert.equal(typeof helper.createClient, 'function');
  assert.equal(typeof helper.MinigateError, 'function');
});

test('Client, PayResult and MinigateError fields match what the code builds', async () => {
  const server = {
    request(o) {
      const data = o.method === 'POST' ? { order_id: 'o', channel: 'wechat', wechat: {} } : { id: 'o', status: 'paid', paid: true };
      setImmediate(() => o.success({ statusCode: 200, data }));
    },
    login(o) { setImmediate(() => o.success({ code: 'c' })); },
    requestPayment(o) { setImmediate(() => o.success({ errMsg: 'requestPayment:ok' })); },
  };
  const client = helper.createClient({ baseUrl: 'https://x', platform: 'wechat', api: server });
  assert.deepEqual(Object.keys(client).sort(), members('Client'));
  const result = await client.pay({ orderId: 'o', clientToken: 't' });
  assert.deepEqual(Object.keys(result).sort(), members('PayResult'));
  assert.deepEqual(Object.keys(await client.status({ orderId: 'o', clientToken: 't' })).sort(), members('OrderStatus'));
  const err = new helper.MinigateError({ type: 't', code: 'c', message: 'm' });
  const declared = DTS.match(/export class MinigateError extends Error \{([\s\S]*?)\n\}/)[1];
  const fields = [...declared.matchAll(/^\s+(?:readonly\s+)?(\w+)\??:/gm)].map((m) => m[1]).sort();
  assert.deepEqual(fields, ['code', 'name', 'param', 'statusCode', 'type']);
  for (const field of fields) assert.ok(field in err, field);
  assert.deepEqual(Object.keys(new helper.MinigateError({ type: 't', code: 'c', message: 'm' })).sort(),
    ['code', 'name', 'param', 'statusCode', 'type']);
  const options = members('ClientOptions');
  assert.deepEqual(options, ['api', 'baseUrl', 'confirmTimeoutMs', 'maxPollIntervalMs', 'platform', 'pollIntervalMs', 'requestTimeoutMs']);
});
