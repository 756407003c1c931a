// Rooms, presence counts and the join snapshot across all three transports (SPEC §3, §4, §4.1).
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, createEvent, createGuestSession, connect, connectGuest, connectToken, makeSocket,
  ownerToken, waitFor, expectNone, clearInbox, join, assertTimestamp, waitUpgrade,
  waitDisconnect, closeAll,
} from './harness.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await stopServer(server); });

const T = { timeout: 20_000 };

describe('three transports in one room', () => {
  test('websocket, polling and default (upgrading) guests join and see distinct guest counts', T, async () => {
    const { slug } = await createEvent(server);
    const [sWs, sPoll, sDef] = await Promise.all([
      createGuestSession(server, slug), createGuestSession(server, slug), createGuestSession(server, slug),
    ]);
    const ws = await connectGuest(server, sWs.guestSessionId, slug, 'websocket');
    const poll = await connectGuest(server, sPoll.guestSessionId, slug, 'polling');
    const def = await connectGuest(server, sDef.guestSessionId, slug, 'default');
    try {
      assert.equal(ws.io.engine.transport.name, 'websocket');
      assert.equal(poll.io.engine.transport.name, 'polling');
      await waitUpgrade(def);
      assert.equal(def.io.engine.transport.name, 'websocket', 'default client must upgrade to websocket');

      // 1st joiner
      ws.emit('event:join', slug);
      const j1 = await waitFor(ws, 'guest:joined');
      assert.equal(j1.guestCount, 1);
      assertTimestamp(j1, 'guest:joined');
      const snap1 = await waitFor(ws, 'event:snapshot');
      assert.equal(snap1.eventSlug, slug);
      assert.equal(snap1.guestCount, 1);
      assert.deepEqual(snap1.likes, {});
      assert.deepEqual(snap1.likedByMe, []);
      assertTimestamp(snap1, 'event:snapshot');

      // 2nd joiner (polling): the room (both members) gets guestCount 2
      poll.emit('event:join', slug);
      const [j2a, j2b] = await Promise.all([
        waitFor(ws, 'guest:joined', (p) => p.guestCount === 2),
        waitFor(poll, 'guest:joined', (p) => p.guestCount === 2),
      ]);
      assertTimestamp(j2a, 'guest:joined');
      assertTimestamp(j2b, 'guest:joined');
      const snap2 = await waitFor(poll, 'event:snapshot');
      assert.equal(snap2.guestCount, 2);
      assertTimestamp(snap2, 'event:snapshot');

      // 3rd joiner (upgraded default client)
      def.emit('event:join', slug);
      await Promise.all([ws, poll, def].map((s) => waitFor(s, 'guest:joined', (p) => p.guestCount === 3)));
      const snap3 = await waitFor(def, 'event:snapshot');
      assert.deepEqual(
        Object.keys(snap3).filter((k) => ['eventSlug', 'guestCount', 'totalGuests', 'peakGuests', 'likes', 'likedByMe', 'timestamp'].includes(k)).sort(),
        ['eventSlug', 'guestCount', 'likedByMe', 'likes', 'peakGuests', 'timestamp', 'totalGuests'],
        `snapshot is missing fields: ${JSON.stringify(snap3)}`,
      );
      assert.equal(snap3.eventSlug, slug);
      assert.equal(snap3.guestCount, 3);
      assert.equal(snap3.totalGuests, 3);
      assert.equal(snap3.peakGuests, 3);
      assert.deepEqual(snap3.likes, {});
      assert.deepEqual(snap3.likedByMe, []);
      assertTimestamp(snap3, 'event:snapshot');

      // only one snapshot per join, and only to the joiner
      await expectNone(ws, 'event:snapshot', 300);
      await expectNone(poll, 'event:snapshot', 0);
      await expectNone(def, 'event:snapshot', 0);

      // event:leave → the rest of the room sees guest:left with the new count
      clearInbox(ws, poll, def);
      def.emit('event:leave', slug);
      const [l1, l2] = await Promise.all([
        waitFor(ws, 'guest:left', (p) => p.guestCount === 2),
        waitFor(poll, 'guest:left', (p) => p.guestCount === 2),
      ]);
      assertTimestamp(l1, 'guest:left');
      assertTimestamp(l2, 'guest:left');

      // disconnect → guest:left once
      poll.disconnect();
      const l3 = await waitFor(ws, 'guest:left', (p) => p.guestCount === 1);
      assertTimestamp(l3, 'guest:left');
      await expectNone(ws, 'guest:left', 400);

      // peak stays 3, total stays 3 for a later joiner
      const late = await connectGuest(server, sDef.guestSessionId, slug, 'websocket');
      const snap4 = await join(late, slug);
      assert.equal(snap4.guestCount, 2);
      assert.equal(snap4.peakGuests, 3);
      assert.equal(snap4.totalGuests, 3, 'a returning guest session is not a new distinct guest');
      closeAll(late);
    } finally {
      closeAll(ws, poll, def);
    }
  });

  test('event:join also accepts {eventSlug} and upper-case input is lower-cased', T, async () => {
    const { slug } = await createEvent(server);
    const s = await createGuestSession(server, slug);
    const a = await connectGuest(server, s.guestSessionId, slug);
    try {
      a.emit('event:join', { eventSlug: slug });
      const snap = await waitFor(a, 'event:snapshot');
      assert.equal(snap.eventSlug, slug);
      assert.equal(snap.guestCount, 1);

      const b = await connectGuest(server, s.guestSessionId, slug, 'polling');
      b.emit('event:join', slug.toUpperCase());
      const snapB = await waitFor(b, 'event:snapshot');
      assert.equal(snapB.eventSlug, slug);
      closeAll(b);
    } finally {
      closeAll(a);
    }
  });

  test('auth.eventId is accepted in place of auth.eventSlug (older clients)', T, async () => {
    const { slug } = await createEvent(server);
    const s = await createGuestSession(server, slug);
    const a = await connect(server, { auth: { guestSessionId: s.guestSessionId, eventId: slug } });
    try {
      const snap = await join(a, slug);
      assert.equal(snap.guestCount, 1);
    } finally {
      closeAll(a);
    }
  });
});

describe('distinct guest identities', () => {
  test('two sockets of one guest session count as one guest', T, async () => {
    const { slug } = await createEvent(server);
    const one = await createGuestSession(server, slug);
    const other = await createGuestSession(server, slug);
    const a1 = await connectGuest(server, one.guestSessionId, slug, 'websocket');
    const a2 = await connectGuest(server, one.guestSessionId, slug, 'polling');
    const b = await connectGuest(server, other.guestSessionId, slug, 'websocket');
    try {
      const snapA1 = await join(a1, slug);
      assert.equal(snapA1.guestCount, 1);

      a2.emit('event:join', slug);
      const j = await waitFor(a1, 'guest:joined', () => true);
      assert.equal(j.guestCount, 1, 'second socket of the same session must not raise guestCount');
      const snapA2 = await waitFor(a2, 'event:snapshot');
      assert.equal(snapA2.guestCount, 1);
      assert.equal(snapA2.totalGuests, 1);
      assert.equal(snapA2.peakGuests, 1);

      clearInbox(a1, a2);
      const snapB = await join(b, slug);
      assert.equal(snapB.guestCount, 2);
      // Presence is coalesced per 250 ms window: a2's join may still reach a1 (count 1) after
      // the inbox was cleared; the count that b's join leads to is 2 for both.
      assert.equal((await waitFor(a1, 'guest:joined', (p) => p.guestCount !== 1)).guestCount, 2);
      assert.equal((await waitFor(a2, 'guest:joined', (p) => p.guestCount !== 1)).guestCount, 2);

      // one of the session's two sockets leaves: still two distinct guests
      clearInbox(a1, a2, b);
      a2.disconnect();
      const left = await waitFor(b, 'guest:left', () => true);
      assert.equal(left.guestCount, 2, 'session still has a socket in the room');

      // the session's last socket leaves: one guest
      a1.disconnect();
      const left2 = await waitFor(b, 'guest:left', (p) => p.guestCount !== 2);
      assert.equal(left2.guestCount, 1);
    } finally {
      closeAll(a1, a2, b);
    }
  });

  test('owners and admins in the room are not counted as guests', T, async () => {
    const ownerId = 'owner-rooms-1';
    const { slug } = await createEvent(server, { ownerId });
    const g = await createGuestSession(server, slug);
    const guest = await connectGuest(server, g.guestSessionId, slug);
    const owner = await connectToken(server, ownerToken(server, ownerId));
    const admin = await connectToken(server, server.adminToken, 'polling');
    try {
      assert.equal((await join(guest, slug)).guestCount, 1);
      const so = await join(owner, slug);
      assert.equal(so.guestCount, 1);
      const sa = await join(admin, slug);
      assert.equal(sa.guestCount, 1);
      assert.equal(sa.totalGuests, 1);
      // disconnecting the owner leaves the guest count unchanged
      clearInbox(guest);
      owner.disconnect();
      const left = await waitFor(guest, 'guest:left', () => true).catch(() => null);
      if (left) assert.equal(left.guestCount, 1);
    } finally {
      closeAll(guest, owner, admin);
    }
  });

  test('a disconnect emits guest:left once per room, and a dropped client catches up from the snapshot', T, async () => {
    const { slug } = await createEvent(server);
    const watcher = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug);
    const s = await createGuestSession(server, slug);
    const leaver = await connectGuest(server, s.guestSessionId, slug, 'polling');
    try {
      await join(watcher, slug);
      await join(leaver, slug);
      clearInbox(watcher);
      leaver.disconnect();
      await waitDisconnect(leaver).catch(() => {});
      const l = await waitFor(watcher, 'guest:left');
      assert.equal(l.guestCount, 1);
      await expectNone(watcher, 'guest:left', 500);

      const back = await connectGuest(server, s.guestSessionId, slug, 'polling');
      const snap = await join(back, slug);
      assert.equal(snap.guestCount, 2);
      assert.equal(snap.totalGuests, 2);
      assert.equal(snap.peakGuests, 2);
      closeAll(back);
    } finally {
      closeAll(watcher, leaver);
    }
  });
});

test('an event:join emitted inside the connect callback is never lost', T, async () => {
  // Real clients join as soon as they are connected; the server must already listen then.
  const { slug } = await createEvent(server);
  const sessions = await Promise.all([1, 2, 3, 4].map(() => createGuestSession(server, slug)));
  const sockets = [];
  try {
    for (let i = 0; i < 16; i++) {
      const s = makeSocket(server, {
        mode: i % 4 === 3 ? 'polling' : 'websocket',
        auth: { guestSessionId: sessions[i % 4].guestSessionId, eventSlug: slug },
      });
      s.on('connect', () => s.emit('event:join', slug));
      sockets.push(s);
    }
    for (const s of sockets) s.connect();
    const results = await Promise.all(sockets.map((s, i) =>
      waitFor(s, 'event:snapshot', () => true, 5000).then(() => null, () => `socket ${i} (${s.io.engine?.transport?.name}) got no snapshot`)));
    const lost = results.filter(Boolean);
    assert.deepEqual(lost, [], `${lost.length} of 16 early joins were lost: ${lost.join('; ')}`);
    const last = await connectGuest(server, sessions[0].guestSessionId, slug);
    sockets.push(last);
    assert.equal((await join(last, slug)).guestCount, 4);
  } finally {
    closeAll(sockets);
  }
});
