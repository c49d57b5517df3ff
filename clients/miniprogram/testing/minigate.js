'use strict';
// Starts a real `minigate serve` in sandbox mode for the end-to-end tests (and the sample
// merchant server next to it), on free loopback ports, and stops them again.
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { httpJson } = require('./http');

const REPO = path.resolve(__dirname, '..', '..', '..');

/** `$MINIGATE_BIN`, or the repository's `.venv/bin/minigate`; null if neither exists. */
function minigateBin() {
  const bin = process.env.MINIGATE_BIN || path.join(REPO, '.venv', 'bin', 'minigate');
  return fs.existsSync(bin) ? bin : null;
}

function pythonNextTo(bin) {
  const python = path.join(path.dirname(bin), 'python');
  if (!fs.existsSync(python)) throw new Error(`no python next to ${bin}`);
  return python;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function cleanEnv(extra) {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('MINIGATE_')) env[key] = value;
  }
  return { ...env, ...extra };
}

/** A child process whose output is kept (bounded) to explain a failure. */
function start(command, args, env, name) {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk) => { output = (output + chunk.toString()).slice(-8000); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    child, name, exited,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Poll `url` until it answers 200; bounded by `timeoutMs`. */
async function waitReady(proc, url, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  proc.exited.then(() => { exited = true; });
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${proc.name} exited before it was ready:\n${proc.output()}`);
    try {
      const answer = await httpJson('GET', url, { timeoutMs: 2000 });
      if (answer.status === 200) return;
    } catch { /* not listening yet */ }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${proc.name} not ready after ${timeoutMs} ms:\n${proc.output()}`);
}

/**
 * minigate in sandbox mode with a fresh SQLite file and fast simulated notifications, plus
 * the sample merchant server (examples/merchant-server) as its webhook receiver.
 */
async function startSandbox() {
  const bin = minigateBin();
  if (!bin) return null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'minigate-miniprogram-'));
  const [port, shopPort] = [await freePort(), await freePort()];
  const base = `http://127.0.0.1:${port}`;
  const shop = `http://127.0.0.1:${shopPort}`;
  const apiKey = 'sk_test_' + crypto.randomBytes(16).toString('hex');
  const webhookSecret = 'whsec_test_' + crypto.randomBytes(16).toString('hex');
  const minigate = start(bin, ['serve', '--host', '127.0.0.1', '--port', String(port)], cleanEnv({
    MINIGATE_API_KEY: apiKey,
    MINIGATE_MODE: 'sandbox',
    MINIGATE_PUBLIC_URL: base,
    MINIGATE_DATABASE_URL: `sqlite+aiosqlite:///${path.join(dir, 'minigate.db')}`,
    MINIGATE_SANDBOX__TIME_SCALE: '0.01',
    MINIGATE_WEBHOOK_URL: `${shop}/hooks/minigate`,
    MINIGATE_WEBHOOK_SECRETS: JSON.stringify([webhookSecret]),
    MINIGATE_LOG_LEVEL: 'WARNING',
  }), 'minigate serve');
  const python = pythonNextTo(bin);
  const merchant = start(python, ['-m', 'uvicorn', 'app:app', '--app-dir', path.join(REPO, 'examples', 'merchant-server'),
    '--host', '127.0.0.1', '--port', String(shopPort), '--log-level', 'warning'], cleanEnv({
    SHOP_MINIGATE_URL: base, MINIGATE_API_KEY: apiKey, SHOP_WEBHOOK_SECRET: webhookSecret,
  }), 'sample merchant server');
  const stop = async () => {
    await Promise.all([minigate.stop(), merchant.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.all([waitReady(minigate, `${base}/healthz`), waitReady(merchant, `${shop}/openapi.json`)]);
  } catch (err) {
    await stop();
    throw err;
  }
  const auth = { authorization: `Bearer ${apiKey}` };
  return {
    base, shop, stop, python,
    /** The merchant's side: POST /v1/orders with the API key. */
    async createOrder(fields) {
      const answer = await httpJson('POST', `${base}/v1/orders`, {
        body: { merchant_reference: 'mp-' + crypto.randomBytes(6).toString('hex'), description: 'mini program e2e', ...fields },
        headers: { ...auth, 'idempotency-key': crypto.randomUUID() },
      });
      if (answer.status !== 201) throw new Error(`create order: HTTP ${answer.status} ${JSON.stringify(answer.data)}`);
      return answer.data;
    },
    async merchantOrder(id) {
      const answer = await httpJson('GET', `${base}/v1/orders/${id}`, { headers: auth });
      if (answer.status !== 200) throw new Error(`get order: HTTP ${answer.status}`);
      return answer.data;
    },
    async notifications(options) {
      const answer = await httpJson('POST', `${base}/sandbox/control/notifications`, { body: options });
      if (answer.status !== 200) throw new Error(`notification control: HTTP ${answer.status}`);
    },
  };
}

/** The rows of `minigate demo` (src/minigate/demo.py CASES), asked of minigate itself. */
function demoCases(python) {
  const script = 'import json; from minigate.demo import CASES; ' +
    'print(json.dumps([dict(provider=c.provider, channel=c.channel, currency=c.currency, amount=c.amount, title=c.title) for c in CASES]))';
  return JSON.parse(execFileSync(python, ['-c', script], { env: cleanEnv({}), encoding: 'utf8', timeout: 30_000 }));
}

module.exports = { startSandbox, demoCases, minigateBin };
