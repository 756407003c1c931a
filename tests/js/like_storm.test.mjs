// A like storm far beyond what the commit queue admits (SPEC §7): every acknowledgement is
// `ok` or "Server busy" (with retryAfterMs in the error event), no sender is disconnected (busy
// replies are not abuse), /health stays 200, a registry write during the storm is not starved,
// and after kill -9 every acknowledged like is on disk.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, createEvent, api, newGuest, join, closeAll, sleep, uniqueSlug,
} from './harness.mjs';

// A small queue makes "far beyond capacity" certain on any machine; the per-socket like rate
// and the like caps are raised because each sender likes hundreds of photos at once, and the
// HTTP rate because the test polls /health from one address.
const CONFIG = [
  '[storage]', 'commit_queue = 100', 'commit_queue_wait = "100ms"',
  '[limits]', 'http_per_ip = { rate = 1000, per = "1s", burst = 1000 }',
  '[limits.events]', 'like = { rate = 100000, per = "1s", burst = 100000 }',
  '[rooms]', 'max_likes_per_identity = 100000', 'max_photos_per_event = 100000', 'snapshot_max_photos = 100000',
].join('\n');

const SENDERS = 16;
const PER_SENDER = 400;
const WAVES = 20;
const BUSY = 'Server busy';

// The first server is killed on purpose; stopServer would report that as a crash.
const cleanup = [];
after(async () => { for (const s of cleanup.reverse()) await s.stop().catch(() => {}); });

test('a storm gets only ok or "Server busy", nobody is disconnected, and acknowledged likes survive kill -9', { timeout: 120_000 }, async (t) => {
  const first = await startServer({ config: CONFIG });
  cleanup.push(first);
  const { slug } = await createEvent(first);
  const senders = [];
  for (let i = 0; i < SENDERS; i++) senders.push(await newGuest(first, slug));
  let disconnected = 0;
  for (const s of senders) s.on('disconnect', () => { disconnected += 1; });
  const busyErrors = [];
  for (const s of senders) s.on('error', (p) => { if (p && p.message === BUSY) busyErrors.push(p); });

  // /health every 50 ms while the storm lasts.
  const health = [];
  let storming = true;
  const poller = (async () => {
    while (storming) {
      const res = await fetch(`${first.url}/health`, { signal: AbortSignal.timeout(5000) }).catch(() => null);
      health.push(res ? res.status : 0);
      await sleep(50);
    }
  })();

  // Every sender fires its likes in waves, each on a photo of its own, without waiting.
  const acks = [];
  const fire = (wave) => {
    for (let i = 0; i < SENDERS; i++) {
      for (let k = wave * (PER_SENDER / WAVES); k < (wave + 1) * (PER_SENDER / WAVES); k++) {
        const photo = `s${i}-p${k}`;
        acks.push(senders[i].timeout(30_000).emitWithAck('photo:like', { eventSlug: slug, photo_id: photo })
          .then((ack) => ({ photo, ack }), (err) => ({ photo, err: String(err) })));
      }
    }
  };
  let registry = null;
  for (let wave = 0; wave < WAVES; wave++) {
    fire(wave);
    // A registry write in the middle of the storm: not queued behind the likes.
    if (wave === WAVES / 2) {
      const t0 = Date.now();
      registry = api(first, 'POST', '/api/admin/events', { slug: uniqueSlug(), name: 'during the storm' })
        .then((res) => ({ res, ms: Date.now() - t0 }));
    }
    await sleep(25);
  }
  const { res: created, ms: registryMs } = await registry;
  const results = await Promise.all(acks);
  storming = false;
  await poller;

  const ok = results.filter((r) => r.ack && r.ack.ok === true);
  const busy = results.filter((r) => r.ack && r.ack.ok === false && r.ack.error === BUSY);
  t.diagnostic(`${results.length} likes: ${ok.length} ok, ${busy.length} busy; ${health.length} health checks; registry write ${registryMs} ms`);
  const other = results.filter((r) => !(r.ack && (r.ack.ok === true || r.ack.error === BUSY)));
  assert.deepEqual(other.slice(0, 5), [], `${other.length} answers were neither ok nor "${BUSY}"`);
  for (const r of ok) assert.deepEqual(r.ack, { ok: true, likeCount: 1 });
  assert.ok(busy.length > 0, `the storm (${results.length} likes) never found the queue full`);
  assert.ok(ok.length > 0, 'no like was accepted');
  assert.ok(busyErrors.length > 0, 'no "Server busy" error event');
  for (const e of busyErrors) {
    assert.equal(e.event, 'photo:like');
    assert.ok(Number.isInteger(e.retryAfterMs) && e.retryAfterMs > 0, `retryAfterMs: ${JSON.stringify(e)}`);
  }
  assert.equal(disconnected, 0, 'a sender was disconnected');
  for (const s of senders) assert.equal(s.connected, true);
  assert.ok(health.length > 0);
  assert.deepEqual(health.filter((st) => st !== 200), [], '/health left 200 during the storm');
  assert.equal(created.status, 201, `registry write during the storm: ${created.status} ${created.text}`);
  assert.ok(registryMs < 5000, `registry write took ${registryMs} ms`);

  // Every acknowledged like is on disk.
  await first.kill9();
  closeAll(...senders);
  const second = await startServer({ config: CONFIG, dataDir: first.dataDir, secret: first.secret });
  cleanup.push(second);
  const reader = await newGuest(second, slug);
  try {
    const snap = await join(reader, slug);
    const missing = ok.filter((r) => snap.likes[r.photo] !== 1).map((r) => r.photo);
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${ok.length} acknowledged likes are gone`);
  } finally {
    closeAll(reader);
  }
});
