// socket.io-client connections for the suite, and bounded waits on what they receive: a broken
// server fails a test instead of hanging it.

import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { DEFAULT_TIMEOUT, ISO_MS_Z, sleep } from './common.mjs';
import { createGuestSession } from './api.mjs';

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
