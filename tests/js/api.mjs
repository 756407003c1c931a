// Tokens (HS256, minted with node:crypto) and the HTTP admin API (global fetch) for the
// socket.io-client suite.

import { createHmac } from 'node:crypto';
import assert from 'node:assert/strict';
import { uniqueSlug } from './common.mjs';

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
