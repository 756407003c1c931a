// The real server binary ($HAFI_BIN) for the browser tests: an admin user made with the CLI,
// `serve` on a loopback port with a clean environment, and calls to its HTTP API with a token
// minted from the test's own secret.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';

export const ADMIN_USER = 'alice';
export const ADMIN_PASSWORD = 'venue-pass-2026'; // the server wants 8+ characters

const SERVER_ENV_VARS = ['SOCKET_PORT', 'SOCKET_HOST', 'NODE_ENV', 'HAFI_ENV', 'HAFI_CONFIG', 'NEXTAUTH_SECRET',
  'ALLOWED_ORIGINS', 'DATA_DIR', 'TRUSTED_PROXIES', 'SOCKET_GUEST_SESSION_VALIDATION_DISABLED', 'RUST_LOG',
  'LOG_FORMAT', 'MAX_CONNECTIONS', 'MAX_CONNECTIONS_PER_IP', 'METRICS_TOKEN'];

function serverEnv(secret) {
  const env = { ...process.env };
  for (const k of SERVER_ENV_VARS) delete env[k];
  return { ...env, NEXTAUTH_SECRET: secret, RUST_LOG: 'warn', RUST_BACKTRACE: '1' };
}

export function requireBinary() {
  const bin = process.env.HAFI_BIN;
  if (!bin) throw new Error('HAFI_BIN is not set: HAFI_BIN=/path/to/target/debug/hafi-realtime npm test');
  if (!existsSync(bin)) throw new Error(`HAFI_BIN=${bin} does not exist (build the server first)`);
  return bin;
}

/** An admin user, made before the server runs (the data directory is locked while it runs). */
export function addAdmin(bin, dataDir, secret) {
  const add = spawnSync(bin, ['admin', 'add', ADMIN_USER, '--password-stdin', '--data-dir', dataDir],
    { input: ADMIN_PASSWORD + '\n', env: serverEnv(secret), encoding: 'utf8', timeout: 30000 });
  assert.equal(add.status, 0, `admin add failed (${add.status}):\n${add.stdout}\n${add.stderr}`);
}

/** Starts `serve` on the port (0 = any) and resolves once it prints "listening on ...". */
export async function startServer(bin, dataDir, secret, port) {
  const child = spawn(bin, ['serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir],
    { env: serverEnv(secret), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (s) => { out = (out + s).slice(-20000); };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', keep);
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`server not ready in 20 s\n${out}`)); }, 20000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      keep(line + '\n');
      const m = /listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(line);
      if (m && Number(m[2]) > 0) { clearTimeout(timer); resolveUrl(m[1]); }
    });
    exited.then((info) => { clearTimeout(timer); reject(new Error(`server exited (${JSON.stringify(info)})\n${out}`)); });
  });
  return {
    url,
    port: Number(new URL(url).port),
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 8000);
      await exited;
      clearTimeout(killer);
    },
  };
}

function b64url(v) {
  return Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
}

export function mintToken(secret, claims, ttlSeconds = 3600) {
  const head = b64url({ alg: 'HS256', typ: 'JWT' });
  const body = b64url({ ...claims, exp: Math.floor(Date.now() / 1000) + ttlSeconds });
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

export async function apiCall(base, token, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, json, text };
}
