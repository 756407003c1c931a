// Access that ends while connected (SPEC §3): the server disconnects the socket itself, which
// socket.io-client reports as "io server disconnect", within seconds.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, createEvent, createGuestSession, connectGuest, connectToken, ownerToken,
  api, patchEvent, join, waitFor, expectNone, waitDisconnect, closeAll, sleep, uniqueSlug,
} from './harness.mjs';

const T = { timeout: 30_000 };
const WITHIN_MS = 5000;
let server;

before(async () => { server = await startServer(); });
after(async () => { await stopServer(server); });

/**
 * Runs `change` and resolves with [reason, ms since the change began] of the socket's disconnect;
 * rejects after WITHIN_MS. The wait starts before the change, so a disconnect that arrives before
 * the change's HTTP answer is still seen with its reason.
 */
async function cutOff(socket, change) {
  const t0 = Date.now();
  const disconnected = waitDisconnect(socket, WITHIN_MS);
  disconnected.catch(() => {}); // if `change` throws, its error is the one reported
  await change();
  return [await disconnected, Date.now() - t0];
}

async function joinedGuest(slug, extra = {}) {
  const session = await createGuestSession(server, slug, extra);
  const socket = await connectGuest(server, session.guestSessionId, slug);
  await join(socket, slug);
  return socket;
}

test('guests of an archived and of a deleted event are disconnected by the server; others stay', T, async () => {
  const archived = (await createEvent(server)).slug;
  const deleted = (await createEvent(server)).slug;
  const untouched = (await createEvent(server)).slug;
  const a = await joinedGuest(archived);
  const d = await joinedGuest(deleted);
  const u = await joinedGuest(untouched);
  try {
    let [reason, ms] = await cutOff(a, () => patchEvent(server, archived, { status: 'ARCHIVED' }));
    assert.equal(reason, 'io server disconnect');
    assert.ok(ms < WITHIN_MS, `archive: ${ms} ms`);

    [reason, ms] = await cutOff(d, async () => {
      const res = await api(server, 'DELETE', `/api/admin/events/${deleted}`);
      assert.equal(res.status, 204);
    });
    assert.equal(reason, 'io server disconnect');
    assert.ok(ms < WITHIN_MS, `delete: ${ms} ms`);

    assert.equal(u.connected, true);
    const ack = await u.timeout(3000).emitWithAck('photo:like', { eventSlug: untouched, photo_id: 'still' });
    assert.deepEqual([ack.ok, ack.likeCount], [true, 1]);
    // Through at least one periodic pass as well.
    await sleep(2100);
    assert.equal(u.connected, true, 'a guest of an untouched event was disconnected');
  } finally {
    closeAll(a, d, u);
  }
});

test('a guest whose session expires is refused at once and disconnected within seconds', T, async () => {
  const slug = (await createEvent(server)).slug;
  const expiresAt = Date.now() + 2000;
  const brief = await joinedGuest(slug, { expiresAt: new Date(expiresAt).toISOString() });
  const observer = await joinedGuest(slug);
  try {
    const ok = await brief.timeout(3000).emitWithAck('photo:like', { eventSlug: slug, photo_id: 'before' });
    assert.equal(ok.ok, true);
    await waitFor(observer, 'photo:like', (p) => p.photo_id === 'before');
    const disconnected = waitDisconnect(brief, expiresAt - Date.now() + WITHIN_MS);
    await sleep(Math.max(0, expiresAt - Date.now() + 30));
    // Right after expiry, before the janitor's pass has (most likely) come round: refused.
    if (brief.connected) {
      const late = await brief.timeout(3000).emitWithAck('photo:like', { eventSlug: slug, photo_id: 'after' })
        .catch((e) => ({ gone: e.message }));
      if (late.gone === undefined) {
        assert.deepEqual(late, { ok: false, error: 'Access denied to this event' });
      }
    }
    const reason = await disconnected;
    const ms = Date.now() - expiresAt;
    assert.equal(reason, 'io server disconnect');
    assert.ok(ms < WITHIN_MS, `disconnected ${ms} ms after expiry`);
    // Whatever the order, the late like counted nowhere.
    await expectNone(observer, 'photo:like', 200, (p) => p.photo_id === 'after');
    const snap = await join(observer, slug);
    assert.equal(snap.likes.after, undefined, JSON.stringify(snap.likes));
    assert.equal(snap.likes.before, 1);
  } finally {
    closeAll(brief, observer);
  }
});

test('an owner is disconnected when the event gets another ownerId', T, async () => {
  const ownerId = uniqueSlug('owner');
  const { slug } = await createEvent(server, { ownerId });
  const owner = await connectToken(server, ownerToken(server, ownerId));
  const guest = await joinedGuest(slug);
  try {
    await join(owner, slug);
    const [reason, ms] = await cutOff(owner, () => patchEvent(server, slug, { ownerId: 'someone-else' }));
    assert.equal(reason, 'io server disconnect');
    assert.ok(ms < WITHIN_MS, `owner change: ${ms} ms`);
    assert.equal(guest.connected, true, "the event's guest lost nothing");
  } finally {
    closeAll(owner, guest);
  }
});
