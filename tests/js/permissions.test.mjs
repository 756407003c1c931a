// Who may do what: admin room and notifications, owner-only relays, cross-event access (SPEC §3, §4).
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, createEvent, createGuestSession, connectGuest, connectToken,
  ownerToken, mintToken, api, waitFor, waitForError, expectNone, clearInbox, join, assertTimestamp,
  closeAll, sleep,
} from './harness.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await stopServer(server); });

const T = { timeout: 20_000 };

test('admin:join and admin:notification reach admin-room members only', T, async () => {
  const { slug } = await createEvent(server);
  const a = await connectToken(server, server.adminToken, 'websocket');
  const b = await connectToken(server, mintToken(server.secret, { user_id: 'admin-2', role: 'ADMIN' }), 'polling');
  const outsider = await connectToken(server, mintToken(server.secret, { user_id: 'admin-3', role: 'ADMIN' }));
  const guest = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug);
  try {
    await join(guest, slug);
    b.emit('admin:join'); // admin:join has no reply: give the joins time to land
    a.emit('admin:join');
    await sleep(300);
    a.emit('admin:notification', { type: 'info', data: { text: 'hello', n: 1 } });
    const [na, nb] = await Promise.all([
      waitFor(a, 'admin:notification', (p) => p.type === 'info'),
      waitFor(b, 'admin:notification', (p) => p.type === 'info'),
    ]);
    for (const n of [na, nb]) {
      assert.equal(n.type, 'info');
      assert.deepEqual(n.data, { text: 'hello', n: 1 });
      assertTimestamp(n, 'admin:notification');
    }
    await expectNone(outsider, 'admin:notification', 400);
    await expectNone(guest, 'admin:notification', 0);
    await expectNone(a, 'error', 0);
    await expectNone(b, 'error', 0);
  } finally {
    closeAll(a, b, outsider, guest);
  }
});

test('a guest or an owner sending admin:join / admin:notification gets "Admin access required"', T, async () => {
  const ownerId = 'owner-perm-admin';
  const { slug } = await createEvent(server, { ownerId });
  const admin = await connectToken(server, server.adminToken);
  const guest = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, 'polling');
  const owner = await connectToken(server, ownerToken(server, ownerId));
  try {
    admin.emit('admin:join');
    await join(guest, slug);
    await sleep(200);

    guest.emit('admin:join');
    const e1 = await waitForError(guest, (p) => p.event === 'admin:join' || p.message === 'Admin access required');
    assert.equal(e1.message, 'Admin access required');
    assertTimestamp(e1, 'error');

    guest.emit('admin:notification', { type: 'spoof', data: { evil: true } });
    const e2 = await waitForError(guest);
    assert.equal(e2.message, 'Admin access required');
    assertTimestamp(e2, 'error');
    await expectNone(admin, 'admin:notification', 400);

    owner.emit('admin:join');
    const e3 = await waitForError(owner);
    assert.equal(e3.message, 'Admin access required');
    owner.emit('admin:notification', { type: 'spoof', data: {} });
    const e4 = await waitForError(owner);
    assert.equal(e4.message, 'Admin access required');
    await expectNone(admin, 'admin:notification', 400);

    // the refused guest was not put into the admin room
    const admin2 = await connectToken(server, server.adminToken, 'polling');
    admin2.emit('admin:join');
    await sleep(200);
    admin2.emit('admin:notification', { type: 'check', data: null });
    await waitFor(admin, 'admin:notification', (p) => p.type === 'check');
    await expectNone(guest, 'admin:notification', 300);
    await expectNone(owner, 'admin:notification', 0);
    closeAll(admin2);
  } finally {
    closeAll(admin, guest, owner);
  }
});

const RELAYS = [
  {
    event: 'photo:upload:progress',
    payload: (slug, tag) => ({ eventSlug: slug, photo_id: `up-${tag}`, progress: 42, filename: `${tag}.jpg` }),
    check: (p, tag) => {
      assert.equal(p.photo_id, `up-${tag}`);
      assert.equal(p.progress, 42);
      assert.equal(p.filename, `${tag}.jpg`);
    },
    match: (p, tag) => p.photo_id === `up-${tag}`,
  },
  {
    event: 'photo:upload:complete',
    payload: (slug, tag) => ({ eventSlug: slug, photo: { id: `ph-${tag}`, url: `/photos/${tag}.jpg`, width: 4000 } }),
    check: (p, tag) => assert.deepEqual(p.photo, { id: `ph-${tag}`, url: `/photos/${tag}.jpg`, width: 4000 }),
    match: (p, tag) => p.photo && p.photo.id === `ph-${tag}`,
  },
  {
    event: 'event:update',
    payload: (slug, tag) => ({ eventSlug: slug, updates: { name: `Renamed ${tag}`, coverPhoto: null } }),
    check: (p, tag) => assert.deepEqual(p.updates, { name: `Renamed ${tag}`, coverPhoto: null }),
    match: (p, tag) => p.updates && p.updates.name === `Renamed ${tag}`,
  },
];

async function relayedBy(sender, slug, watchers, tag) {
  for (const r of RELAYS) {
    sender.emit(r.event, r.payload(slug, tag));
    const got = await Promise.all(watchers.map((w) => waitFor(w, r.event, (p) => r.match(p, tag))));
    for (const p of got) {
      r.check(p, tag);
      assertTimestamp(p, r.event);
    }
  }
}

test('upload progress/complete and event:update from an admin are relayed to the room', T, async () => {
  const { slug } = await createEvent(server);
  const g1 = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, 'websocket');
  const g2 = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, 'polling');
  const admin = await connectToken(server, server.adminToken, 'default');
  try {
    await join(g1, slug);
    await join(g2, slug);
    await relayedBy(admin, slug, [g1, g2], 'admin');
    await expectNone(admin, 'error', 0);
  } finally {
    closeAll(g1, g2, admin);
  }
});

test('the event owner (non-ADMIN role, user_id == ownerId) may relay them too', T, async () => {
  const ownerId = 'owner-perm-relay';
  const { slug } = await createEvent(server, { ownerId });
  const g1 = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, 'polling');
  const owner = await connectToken(server, ownerToken(server, ownerId), 'websocket');
  try {
    await join(g1, slug);
    const snap = await join(owner, slug);
    assert.equal(snap.eventSlug, slug);
    await relayedBy(owner, slug, [g1, owner], 'owner');
    await expectNone(owner, 'error', 0);

    // any non-ADMIN role counts as an owner
    const studio = await connectToken(server, ownerToken(server, ownerId, 'STUDIO_MANAGER'), 'polling');
    try {
      await relayedBy(studio, slug, [g1], 'studio');
    } finally {
      closeAll(studio);
    }
  } finally {
    closeAll(g1, owner);
  }
});

test('a guest, or the owner of another event, cannot relay them; the room receives nothing', T, async () => {
  const ownerId = 'owner-perm-real';
  const { slug } = await createEvent(server, { ownerId });
  const { slug: otherSlug } = await createEvent(server, { ownerId: 'owner-perm-other' });
  const watcher = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug);
  const guest = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, 'polling');
  const stranger = await connectToken(server, ownerToken(server, 'owner-perm-other'));
  try {
    await join(watcher, slug);
    await join(guest, slug);
    // The guest's join reaches the watcher within the presence window (250 ms); only then is
    // the room quiet.
    await waitFor(watcher, 'guest:joined', (p) => p.guestCount === 2);
    clearInbox(watcher, guest);

    for (const sender of [guest, stranger]) {
      for (const r of RELAYS) {
        sender.emit(r.event, r.payload(slug, 'denied'));
        const err = await waitForError(sender, (p) => p.event === undefined || p.event === r.event);
        assert.equal(typeof err.message, 'string', JSON.stringify(err));
        assert.ok(err.message.length > 0);
        assert.notEqual(err.message, 'Invalid payload', `${r.event}: a well-formed payload is a permission failure`);
        if (err.event !== undefined) assert.equal(err.event, r.event);
        assertTimestamp(err, 'error');
      }
    }
    await expectNone(watcher, '*', 500, () => true);
    for (const r of RELAYS) await expectNone(guest, r.event, 0);

    // the other event's owner may not join this event's room either
    stranger.emit('event:join', slug);
    const err = await waitForError(stranger, (p) => p.message === 'Access denied to this event');
    assertTimestamp(err, 'error');
    await expectNone(stranger, 'event:snapshot', 300);
    // ...but may join its own
    const own = await join(stranger, otherSlug);
    assert.equal(own.eventSlug, otherSlug);
  } finally {
    closeAll(watcher, guest, stranger);
  }
});

test('a guest joining another event\'s room gets "Access denied to this event"', T, async () => {
  const { slug: a } = await createEvent(server);
  const { slug: b } = await createEvent(server);
  const inB = await connectGuest(server, (await createGuestSession(server, b)).guestSessionId, b, 'polling');
  const guestA = await connectGuest(server, (await createGuestSession(server, a)).guestSessionId, a);
  try {
    await join(inB, b);
    clearInbox(inB);
    guestA.emit('event:join', b);
    const err = await waitForError(guestA);
    assert.equal(err.message, 'Access denied to this event');
    assertTimestamp(err, 'error');
    await expectNone(guestA, 'event:snapshot', 300);
    await expectNone(inB, 'guest:joined', 0);

    // an owner token for an event without an owner is denied too
    const { slug: noOwner } = await createEvent(server);
    const photog = await connectToken(server, ownerToken(server, 'someone'));
    photog.emit('event:join', noOwner);
    const err2 = await waitForError(photog);
    assert.equal(err2.message, 'Access denied to this event');
    closeAll(photog);

    // the guest can still join its own event afterwards
    const snap = await join(guestA, a);
    assert.equal(snap.guestCount, 1);
  } finally {
    closeAll(inB, guestA);
  }
});

test('POST /api/emit acts like an admin socket', T, async () => {
  const { slug } = await createEvent(server);
  const admin = await connectToken(server, server.adminToken);
  const g = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug);
  try {
    admin.emit('admin:join');
    await join(g, slug);
    await sleep(200);

    const r1 = await api(server, 'POST', '/api/emit', { event: 'admin:notification', data: { type: 'http', data: { x: 1 } } });
    assert.equal(r1.status, 202, r1.text);
    assert.equal(typeof r1.json.recipients, 'number');
    assert.ok(r1.json.recipients >= 1, r1.text);
    const n = await waitFor(admin, 'admin:notification', (p) => p.type === 'http');
    assert.deepEqual(n.data, { x: 1 });
    assertTimestamp(n, 'admin:notification');

    const r2 = await api(server, 'POST', '/api/emit', { event: 'photo:like', data: { eventSlug: slug, photo_id: 'e1', likeCount: 3 } });
    assert.equal(r2.status, 202, r2.text);
    const like = await waitFor(g, 'photo:like', (p) => p.photo_id === 'e1');
    assert.equal(like.likeCount, 3);

    const r3 = await api(server, 'POST', '/api/emit', { event: 'event:join', data: slug });
    assert.equal(r3.status, 400, r3.text);
    const r4 = await api(server, 'POST', '/api/emit', { event: 'admin:notification', data: { type: 'x', data: {} } },
      ownerToken(server, 'u1'));
    assert.ok([401, 403].includes(r4.status), `non-admin token: ${r4.status} ${r4.text}`);
    const r5 = await api(server, 'POST', '/api/emit', { event: 'admin:notification', data: { type: 'x', data: {} } }, null);
    assert.equal(r5.status, 401, r5.text);
  } finally {
    closeAll(admin, g);
  }
});
