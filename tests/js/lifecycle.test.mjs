// Process lifecycle seen from clients: SIGTERM shutdown and like counts surviving kill -9 (SPEC §5.2, §7).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import {
  startServer, createEvent, createGuestSession, connectGuest, waitFor, join, closeAll,
  waitDisconnect,
} from './harness.mjs';

const T = { timeout: 30_000 };
const cleanup = [];
after(async () => {
  for (const s of cleanup.reverse()) {
    await s.stop().catch(() => {});
    try { rmSync(s.tmp, { recursive: true, force: true }); } catch { /* ignore */ }
  }
});

test('SIGTERM disconnects clients from the server side and exits 0 within 10 s', T, async () => {
  const server = await startServer();
  cleanup.push(server);
  const { slug } = await createEvent(server);
  const ws = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, 'websocket');
  const poll = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, 'polling');
  await join(ws, slug);
  await join(poll, slug);

  const reasons = Promise.all([waitDisconnect(ws, 10_000), waitDisconnect(poll, 10_000)]);
  const t0 = Date.now();
  server.child.kill('SIGTERM');
  const exit = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server still running 10 s after SIGTERM')), 10_000);
    server.child.once('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal }); });
  });
  assert.equal(exit.code, 0, `exit after SIGTERM: ${JSON.stringify(exit)}\n${server.output()}`);
  assert.ok(Date.now() - t0 < 10_000);
  const [rWs, rPoll] = await reasons;
  // "tell clients (server-side disconnect)": a Socket.IO DISCONNECT packet, which
  // socket.io-client reports as "io server disconnect" (a bare transport close is not it).
  assert.deepEqual({ websocket: rWs, polling: rPoll },
    { websocket: 'io server disconnect', polling: 'io server disconnect' });
});

test('like counts a client saw survive kill -9 and a restart on the same data directory', T, async () => {
  const first = await startServer();
  cleanup.push(first);
  const { slug } = await createEvent(first);
  const sA = await createGuestSession(first, slug);
  const sB = await createGuestSession(first, slug);
  const a = await connectGuest(first, sA.guestSessionId, slug, 'websocket');
  const b = await connectGuest(first, sB.guestSessionId, slug, 'polling');
  await join(a, slug);
  await join(b, slug);
  a.emit('photo:like', { eventSlug: slug, photo_id: 'keep' });
  assert.equal((await waitFor(b, 'photo:like', (p) => p.photo_id === 'keep')).likeCount, 1);
  b.emit('photo:like', { eventSlug: slug, photo_id: 'keep' });
  assert.equal((await waitFor(a, 'photo:like', (p) => p.photo_id === 'keep' && p.likeCount === 2)).likeCount, 2);
  b.emit('photo:like', { eventSlug: slug, photo_id: 12 });
  assert.equal((await waitFor(a, 'photo:like', (p) => p.photo_id === '12')).likeCount, 1);
  // the moment a count was seen it must be durable
  await first.kill9();
  closeAll(a, b);

  const second = await startServer({ dataDir: first.dataDir, secret: first.secret });
  cleanup.push(second);
  // guest sessions and the event survived too
  const a2 = await connectGuest(second, sA.guestSessionId, slug, 'default');
  try {
    const snap = await join(a2, slug);
    assert.deepEqual(snap.likes, { keep: 2, 12: 1 });
    assert.deepEqual(snap.likedByMe, ['keep']);
    assert.equal(snap.guestCount, 1, 'presence is memory only and rebuilds');
  } finally {
    closeAll(a2);
  }
});
