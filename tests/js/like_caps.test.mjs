// The like caps of SPEC §6: distinct photos per identity and per event, refused with
// "Like limit reached" in the error event and the acknowledgement; unlikes always work;
// admins hear once per event that its cap was reached.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, createEvent, api, newGuest, connectToken, waitFor, waitForError,
  expectNone, join, closeAll, sleep,
} from './harness.mjs';

let server;
before(async () => {
  server = await startServer({ config: '[rooms]\nmax_likes_per_identity = 3\nmax_photos_per_event = 5\n' });
});
after(async () => { await stopServer(server); });

const T = { timeout: 25_000 };
const LIMIT = 'Like limit reached';

const like = (s, slug, photo, extra = {}) =>
  s.timeout(3000).emitWithAck('photo:like', { eventSlug: slug, photo_id: photo, ...extra });
const unlike = (s, slug, photo) =>
  s.timeout(3000).emitWithAck('photo:unlike', { eventSlug: slug, photo_id: photo });

const isSecurity = (slug) => (n) => n && n.type === 'security' && n.data && n.data.eventSlug === slug;

test('caps per identity and per event refuse likes, never unlikes, and tell admins once', T, async () => {
  const { slug } = await createEvent(server);
  const admin = await connectToken(server, server.adminToken);
  const a = await newGuest(server, slug);
  const b = await newGuest(server, slug);
  const c = await newGuest(server, slug);
  try {
    admin.emit('admin:join');
    for (const s of [a, b, c]) await join(s, slug);
    await sleep(200); // admin:join has no reply

    // Identity cap: a may like 3 distinct photos.
    for (const p of ['p1', 'p2', 'p3']) {
      assert.deepEqual(await like(a, slug, p), { ok: true, likeCount: 1 });
    }
    assert.deepEqual(await like(a, slug, 'p4'), { ok: false, error: LIMIT });
    const e = await waitForError(a, (p) => p.message === LIMIT);
    assert.equal(e.event, 'photo:like');
    // Nobody heard of a like of p4.
    await expectNone(b, 'photo:like', 300, (p) => p.photo_id === 'p4');
    // Liking again what a already likes is the usual no-op, not a refusal.
    assert.deepEqual(await like(a, slug, 'p1'), { ok: true, likeCount: 1 });
    // An unlike works at the cap and makes room.
    assert.deepEqual(await unlike(a, slug, 'p1'), { ok: true, likeCount: 0 });
    assert.deepEqual(await like(a, slug, 'p4'), { ok: true, likeCount: 1 });

    // Event cap: p1..p4 have like records, so one more photo id fits.
    assert.deepEqual(await like(b, slug, 'p5'), { ok: true, likeCount: 1 });
    assert.deepEqual(await like(b, slug, 'p6'), { ok: false, error: LIMIT });
    assert.equal((await waitForError(b, (p) => p.message === LIMIT)).event, 'photo:like');
    const n = await waitFor(admin, 'admin:notification', isSecurity(slug));
    assert.equal(typeof n.data.message, 'string');
    assert.ok(n.data.message.length > 0);

    // Tripping it again refuses again but tells admins nothing new.
    assert.deepEqual(await like(c, slug, 'p7'), { ok: false, error: LIMIT });
    assert.deepEqual(await like(b, slug, 'p8'), { ok: false, error: LIMIT });
    // Photos that already have likes can still be liked; unlikes still work.
    assert.deepEqual(await like(c, slug, 'p2'), { ok: true, likeCount: 2 });
    assert.deepEqual(await unlike(b, slug, 'p5'), { ok: true, likeCount: 0 });
    await expectNone(admin, 'admin:notification', 600, isSecurity(slug));

    // The web app's admin-set count is its truth and is not refused.
    assert.deepEqual(await like(admin, slug, 'p9', { likeCount: 12 }), { ok: true, likeCount: 12 });
    // An admin's own like of another new photo is capped like anyone's: 403 from /api/emit.
    const r = await api(server, 'POST', '/api/emit', { event: 'photo:like', data: { eventSlug: slug, photo_id: 'p10' } });
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.error, LIMIT);

    // A joiner's snapshot holds what was accepted, and nothing refused.
    const d = await newGuest(server, slug);
    const snap = await join(d, slug);
    assert.deepEqual(snap.likes, { p9: 12, p5: 0, p2: 2, p4: 1, p1: 0, p3: 1 });
    closeAll(d);
  } finally {
    closeAll(admin, a, b, c);
  }
});
