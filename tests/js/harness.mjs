// Test harness for the hafi-realtime npm-client integration suite.
//
// Starts the real server binary ($HAFI_BIN), mints HS256 tokens with node:crypto,
// talks to the HTTP admin API with global fetch and opens socket.io-client
// connections. Every wait is bounded so a broken server fails tests instead of
// hanging them.

import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as pathJoin } from 'node:path';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';

export const DEFAULT_TIMEOUT = 3000;
export const ISO_MS_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

// Environment variables that configure the server; never inherit them from
// the caller's environment so a stray NODE_ENV=production or SOCKET_PORT
// cannot change what the suite tests.
const SERVER_ENV_VARS = [
  'SOCKET_PORT', 'SOCKET_HOST', 'NODE_ENV', 'HAFI_ENV', 'HAFI_CONFIG', 'NEXTAUTH_SECRET',
  'ALLOWED_ORIGINS', 'DATA_DIR', 'TRUSTED_PROXIES', 'SOCKET_GUEST_SESSION_VALIDATION_DISABLED',
  'RUST_LOG', 'LOG_FORMAT', 'MAX_CONNECTIONS', 'MAX_CONNECTIONS_PER_IP', 'METRICS_TOKEN',
];

const liveServers = new Set();
process.on('exit', () => {
  for (const child of liveServers) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function randomId(prefix = '') {
  return prefix + randomBytes(6).toString('hex');
}

export function uniqueSlug(prefix = 'ev') {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

function requireBinary() {
  const bin = process.env.HAFI_BIN;
  if (!bin) {
    throw new Error('HAFI_BIN is not set: point it at the hafi-realtime binary, e.g. '
      + 'HAFI_BIN=/work/main/target/debug/hafi-realtime node --test');
  }
  if (!existsSync(bin)) {
    throw new Error(`HAFI_BIN=${bin} does not exist (build the server first)`);
  }
  return bin;
}

/**
 * Start the server on a random port with a fresh data directory.
 * options.config: TOML text written to <tmp>/config.toml and passed with --config.
 * options.env: extra environment variables for the server.
 * options.dataDir, options.secret: reuse a data directory and secret (restart tests).
 * Returns { url, secret, dataDir, adminToken, stop(), alive(), output() }.
 */
export async function startServer(options = {}) {
  const bin = requireBinary();
  const tmp = mkdtempSync(pathJoin(tmpdir(), 'hafi-js-'));
  // options.dataDir / options.secret: reuse another run's data (restart tests);
  // a data dir passed in is not deleted by stop().
  const dataDir = options.dataDir || pathJoin(tmp, 'data');
  const secret = options.secret || randomBytes(36).toString('base64url'); // 48 characters
  assert.equal(secret.length, 48);

  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir];
  if (options.config) {
    const configPath = pathJoin(tmp, 'config.toml');
    writeFileSync(configPath, options.config);
    args.push('--config', configPath);
  }

  const env = { ...process.env };
  for (const k of SERVER_ENV_VARS) delete env[k];
  Object.assign(env, {
    NEXTAUTH_SECRET: secret,
    RUST_LOG: 'warn',
    RUST_BACKTRACE: '1',
    ...(options.env || {}),
  });

  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  liveServers.add(child);

  let stdoutBuf = '';
  let stderrBuf = '';
  const keep = (buf, s) => (buf + s).slice(-20000);
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { stderrBuf = keep(stderrBuf, d); });

  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      liveServers.delete(child);
      resolve(exitInfo);
    });
  });
  const output = () => `--- server stdout ---\n${stdoutBuf}\n--- server stderr ---\n${stderrBuf}`;

  const url = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    let done = false;
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(err); else resolve(value);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(new Error(`server did not print "listening on ..." within 15 s\n${output()}`));
    }, 15000);
    rl.on('line', (line) => {
      stdoutBuf = keep(stdoutBuf, line + '\n');
      const m = /^listening on (http:\/\/127\.0\.0\.1:(\d+))\s*$/.exec(line);
      if (m && Number(m[2]) > 0) finish(null, m[1]);
    });
    child.on('error', (e) => finish(new Error(`cannot spawn ${bin}: ${e.message}`)));
    exited.then((info) => finish(new Error(
      `server exited before it was ready (code ${info.code}, signal ${info.signal})\n${output()}`)));
  });

  let stopping = null;
  const server = {
    url,
    secret,
    dataDir,
    tmp,
    child,
    sockets: new Set(),
    output,
    /** true while the process has not exited. */
    alive: () => exitInfo === null,
    exitInfo: () => exitInfo,
    /** SIGKILL at once and wait for the exit (crash simulation); keeps the data directory. */
    async kill9() {
      if (exitInfo === null) {
        child.kill('SIGKILL');
        await exited;
      }
      return exitInfo;
    },
    /**
     * SIGTERM, wait for exit (SIGKILL after 5 s). Resolves { code, signal, crashed, forced, ms }.
     * stop({ keepData: true }) leaves the data directory in place.
     */
    stop({ keepData = false } = {}) {
      if (stopping) return stopping;
      stopping = (async () => {
        for (const s of server.sockets) {
          try { s.disconnect(); } catch { /* ignore */ }
        }
        server.sockets.clear();
        const crashed = exitInfo !== null; // died before we asked it to
        const t0 = Date.now();
        let forced = false;
        if (!crashed) {
          child.kill('SIGTERM');
          const killer = setTimeout(() => { forced = true; child.kill('SIGKILL'); }, 5000);
          await exited;
          clearTimeout(killer);
        }
        if (!keepData) {
          try { rmSync(tmp, { recursive: true, force: true }); } catch { /* ignore */ }
        }
        return { ...exitInfo, crashed, forced, ms: Date.now() - t0 };
      })();
      return stopping;
    },
  };
  server.adminToken = mintToken(secret, { user_id: 'admin-1', role: 'ADMIN' });
  return server;
}

/** Call in after(): stops the server and fails if it had crashed during the file. */
export async function stopServer(server) {
  if (!server) return;
  const info = await server.stop();
  assert.equal(info.crashed, false,
    `server process died during the tests (code ${info.code}, signal ${info.signal})\n${server.output()}`);
}

// ---------------------------------------------------------------- tokens

const b64url = (obj) => Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj)).toString('base64url');

/**
 * HS256 JWT signed with node:crypto. claims default: exp = now + 1 h.
 * opts.header overrides the header (e.g. {alg:'none'}), opts.noExp drops exp.
 */
export function mintToken(secret, claims, opts = {}) {
  const header = opts.header || { alg: 'HS256', typ: 'JWT' };
  const body = { exp: Math.floor(Date.now() / 1000) + 3600, ...claims };
  if (opts.noExp) delete body.exp;
  const signingInput = `${b64url(header)}.${b64url(body)}`;
  const sig = createHmac('sha256', secret).update(signingInput).digest('base64url');
  return `${signingInput}.${sig}`;
}

export const adminToken = (server, userId = 'admin-1') =>
  mintToken(server.secret, { user_id: userId, role: 'ADMIN' });

export const ownerToken = (server, userId, role = 'PHOTOGRAPHER') =>
  mintToken(server.secret, { user_id: userId, role });

// ---------------------------------------------------------------- HTTP API

export async function api(server, method, path, body, token = server.adminToken) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(server.url + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status: res.status, json, text, headers: res.headers };
}

/** POST /api/admin/events; expects 201. */
export async function createEvent(server, { slug = uniqueSlug(), name, ownerId, status, accessCode } = {}) {
  const body = { slug, name: name ?? `Event ${slug}` };
  if (ownerId !== undefined) body.ownerId = ownerId;
  if (status !== undefined) body.status = status;
  if (accessCode !== undefined) body.accessCode = accessCode;
  const res = await api(server, 'POST', '/api/admin/events', body);
  assert.equal(res.status, 201, `POST /api/admin/events ${JSON.stringify(body)} -> ${res.status} ${res.text}`);
  return { slug, ...(res.json || {}) };
}

/** POST /api/admin/guest-sessions {eventSlug, ...extra}; expects 201 and returns the body. */
export async function createGuestSession(server, eventSlug, extra = {}) {
  const res = await api(server, 'POST', '/api/admin/guest-sessions', { eventSlug, ...extra });
  assert.equal(res.status, 201, `POST /api/admin/guest-sessions ${eventSlug} -> ${res.status} ${res.text}`);
  assert.equal(typeof res.json?.guestSessionId, 'string', `no guestSessionId in ${res.text}`);
  assert.equal(res.json.eventSlug, eventSlug);
  return res.json;
}

export async function patchEvent(server, slug, patch) {
  const res = await api(server, 'PATCH', `/api/admin/events/${slug}`, patch);
  assert.equal(res.status, 200, `PATCH /api/admin/events/${slug} -> ${res.status} ${res.text}`);
  return res.json;
}

// ---------------------------------------------------------------- sockets

function transportOptions(mode) {
  switch (mode) {
    case 'websocket': return { transports: ['websocket'] };
    case 'polling': return { transports: ['polling'] };
    case 'default': return {};
    default: throw new Error(`unknown transport mode ${mode}`);
  }
}

/**
 * Build (but do not connect) a socket.io-client socket. Every event it receives
 * is recorded in socket.inbox so waitFor() never misses an event that arrived
 * before it was called.
 */
export function makeSocket(server, { mode = 'websocket', auth, extraHeaders } = {}) {
  const socket = io(server.url, {
    ...transportOptions(mode),
    forceNew: true,
    reconnection: false,
    autoConnect: false,
    timeout: 5000,
    ...(auth !== undefined ? { auth } : {}),
    ...(extraHeaders ? { extraHeaders } : {}),
  });
  socket.inbox = [];       // unconsumed [{event, args, at}]
  socket.received = [];    // everything ever received, for diagnostics
  socket.waiters = new Set();
  socket.onAny((event, ...args) => {
    const entry = { event, args, at: Date.now() };
    socket.received.push(entry);
    for (const w of socket.waiters) {
      if (w.event === event && w.predicate(args[0], args)) {
        socket.waiters.delete(w);
        w.resolve(args[0]);
        return;
      }
    }
    socket.inbox.push(entry);
  });
  server.sockets.add(socket);
  return socket;
}

/** Connect and resolve with the socket once connected; rejects with the connect_error. */
export function connect(server, opts = {}) {
  const socket = makeSocket(server, opts);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      socket.disconnect();
      reject(new Error(`socket (${opts.mode || 'websocket'}) did not connect within 5 s`));
    }, 5000);
    const onConnect = () => { cleanup(); resolve(socket); };
    const onError = (err) => {
      cleanup();
      socket.disconnect();
      const e = new Error(`connect_error: ${err.message}`);
      e.connectError = err;
      reject(e);
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('connect_error', onError);
    };
    socket.on('connect', onConnect);
    socket.on('connect_error', onError);
    socket.connect();
  });
}

/** Connect as a guest of eventSlug with a given session id. */
export const connectGuest = (server, guestSessionId, eventSlug, mode = 'websocket') =>
  connect(server, { mode, auth: { guestSessionId, eventSlug } });

/** Connect with a token. */
export const connectToken = (server, token, mode = 'websocket') =>
  connect(server, { mode, auth: { token } });

/**
 * Try to connect with opts and resolve with the connect_error message.
 * Fails the test if the connection is accepted.
 */
export function connectError(server, opts = {}) {
  const socket = makeSocket(server, opts);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.disconnect();
      reject(new Error('no connect_error (and no connect) within 5 s'));
    }, 5000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.disconnect();
      reject(new Error(`connection with ${JSON.stringify(opts.auth)} was accepted, expected a connect_error`));
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      socket.disconnect();
      resolve(err.message);
    });
    socket.connect();
  });
}

/**
 * Resolve with the payload (first argument) of the first `eventName` event that
 * satisfies predicate, whether it arrived before or after this call. The event is
 * consumed. Rejects after timeoutMs.
 */
export function waitFor(socket, eventName, predicate = () => true, timeoutMs = DEFAULT_TIMEOUT) {
  if (typeof predicate === 'number') { timeoutMs = predicate; predicate = () => true; }
  const idx = socket.inbox.findIndex((e) => e.event === eventName && predicate(e.args[0], e.args));
  if (idx >= 0) {
    const [entry] = socket.inbox.splice(idx, 1);
    return Promise.resolve(entry.args[0]);
  }
  return new Promise((resolve, reject) => {
    const waiter = {
      event: eventName,
      predicate,
      resolve: (v) => { clearTimeout(timer); resolve(v); },
    };
    const timer = setTimeout(() => {
      socket.waiters.delete(waiter);
      const seen = socket.inbox.filter((e) => e.event === eventName).map((e) => JSON.stringify(e.args[0]));
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${eventName}" on socket ${socket.id}`
        + (seen.length ? `; unmatched "${eventName}" payloads: ${seen.join(', ').slice(0, 2000)}` : '')
        + `; other events seen: ${JSON.stringify(socket.inbox.map((e) => e.event).slice(-20))}`));
    }, timeoutMs);
    socket.waiters.add(waiter);
  });
}

/** Wait for an `error` event, optionally with a given message. */
export const waitForError = (socket, predicate = () => true, timeoutMs = DEFAULT_TIMEOUT) =>
  waitFor(socket, 'error', predicate, timeoutMs);

/**
 * Assert that no unconsumed `eventName` event (matching predicate) is or becomes
 * present on socket within ms. Pass '*' to assert that no event at all arrives.
 */
export async function expectNone(socket, eventName, ms = 500, predicate = () => true) {
  await sleep(ms);
  const hits = socket.inbox.filter((e) => (eventName === '*' || e.event === eventName) && predicate(e.args[0]));
  assert.equal(hits.length, 0,
    `expected no "${eventName}" on socket ${socket.id} but got: ${JSON.stringify(hits.map((e) => [e.event, ...e.args])).slice(0, 2000)}`);
}

/** Forget every unconsumed event on the given sockets. */
export function clearInbox(...sockets) {
  for (const s of sockets) s.inbox.length = 0;
}

/** Resolve once a socket disconnects (bounded). */
export function waitDisconnect(socket, timeoutMs = DEFAULT_TIMEOUT) {
  if (!socket.connected) return Promise.resolve('already disconnected');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket ${socket.id} not disconnected within ${timeoutMs} ms`)), timeoutMs);
    socket.once('disconnect', (reason) => { clearTimeout(timer); resolve(reason); });
  });
}

/** Emit event:join with a bare slug and wait for this socket's event:snapshot. */
export async function join(socket, slug, timeoutMs = DEFAULT_TIMEOUT) {
  socket.emit('event:join', slug);
  return waitFor(socket, 'event:snapshot', (p) => p && p.eventSlug === slug, timeoutMs);
}

/** Assert a payload carries an ISO-8601 UTC timestamp with milliseconds. */
export function assertTimestamp(payload, what = 'payload') {
  assert.ok(payload && typeof payload === 'object', `${what} is not an object: ${JSON.stringify(payload)}`);
  assert.equal(typeof payload.timestamp, 'string', `${what} has no string timestamp: ${JSON.stringify(payload)}`);
  assert.match(payload.timestamp, ISO_MS_Z, `${what}.timestamp is not toISOString() form`);
  const t = Date.parse(payload.timestamp);
  assert.ok(Math.abs(Date.now() - t) < 60_000, `${what}.timestamp ${payload.timestamp} is not now`);
}

/** A fresh guest session for slug, connected with mode. */
export async function newGuest(server, slug, mode = 'websocket') {
  const session = await createGuestSession(server, slug);
  const socket = await connectGuest(server, session.guestSessionId, slug, mode);
  socket.guestSessionId = session.guestSessionId;
  return socket;
}

/** Wait until the engine of a default-mode socket has upgraded to websocket. */
export function waitUpgrade(socket, timeoutMs = 5000) {
  const engine = socket.io.engine;
  if (engine.transport.name === 'websocket') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(
      `default-mode socket did not upgrade to websocket within ${timeoutMs} ms (transport ${engine.transport.name})`)), timeoutMs);
    engine.once('upgrade', () => { clearTimeout(timer); resolve(); });
  });
}

export function closeAll(...sockets) {
  for (const s of sockets.flat()) if (s) s.disconnect();
}
