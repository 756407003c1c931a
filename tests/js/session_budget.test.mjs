// Session budgets with the stock client, default configuration: a venue address gets 100 guest
// sessions from POST /api/gallery/{slug}/access at once and then 429 with Retry-After; the
// sessions it got connect and join with socket.io-client; one session holds at most 8 sockets.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, createEvent, connectGuest, connectError, join, closeAll, sleep,
} from './harness.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await stopServer(server); });

const T = { timeout: 60_000 };

async function access(slug, code) {
  const res = await fetch(`${server.url}/api/gallery/${slug}/access`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ access_code: code }),
    signal: AbortSignal.timeout(5000),
  });
  const json = await res.json().catch(() => null);
  return { status: res.status, json, retryAfter: Number(res.headers.get('retry-after')) };
}

test('100 sessions per address at once, then 429; each session connects, at most 8 sockets each', T, async () => {
  const { slug } = await createEvent(server, { accessCode: 'VENUE1' });
  const sessions = [];
  // Paced under the HTTP API's own bucket (20/s), so only the session budget can refuse.
  for (let i = 0; i < 100; i++) {
    const r = await access(slug, 'venue1');
    assert.equal(r.status, 201, `session ${i + 1}: ${JSON.stringify(r.json)}`);
    sessions.push(r.json.guestSessionId);
    await sleep(60);
  }
  const refused = await access(slug, 'VENUE1');
  assert.equal(refused.status, 429, JSON.stringify(refused.json));
  assert.ok(refused.retryAfter >= 2, `Retry-After ${refused.retryAfter}`);

  // What was handed out works with the stock client.
  const first = await connectGuest(server, sessions[0], slug);
  const snap = await join(first, slug);
  assert.equal(snap.eventSlug, slug);

  // One session: 8 sockets, the 9th is refused.
  const more = [];
  try {
    for (let i = 0; i < 7; i++) more.push(await connectGuest(server, sessions[0], slug));
    const message = await connectError(server, { auth: { guestSessionId: sessions[0], eventSlug: slug } });
    assert.equal(message, 'Too many connections');
    // Another session of the same address is not affected.
    more.push(await connectGuest(server, sessions[1], slug));
  } finally {
    closeAll(first, more);
  }
});
