// Malformed input of every kind gets `error {message:"Invalid payload", event}` and changes
// nothing; the server keeps working (SPEC §4 "Anything malformed ...", §6).
//
// Error replies are limited to one per second per event name per socket, so each
// "case number" below is sent from its own fresh socket: socket i sends the i-th
// malformed variant of every event, so no socket sends one event name twice.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, createEvent, createGuestSession, connectGuest, connectToken,
  waitFor, waitForError, expectNone, clearInbox, join, assertTimestamp, closeAll, sleep,
  waitDisconnect,
} from './harness.mjs';

let server;
let slug;
let watcher;      // guest in the room
let adminWatcher; // admin in the room and in `admin`

before(async () => {
  server = await startServer();
  ({ slug } = await createEvent(server));
  watcher = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, 'polling');
  adminWatcher = await connectToken(server, server.adminToken, 'websocket');
  await join(watcher, slug);
  await join(adminWatcher, slug);
  adminWatcher.emit('admin:join');
  await sleep(200);
});
after(async () => { await stopServer(server); });

const T = { timeout: 45_000 };
const BIN = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
const P200 = 'p'.repeat(200);     // photo_id over 128 characters
const C5000 = 'c'.repeat(5000);   // comment over 2000 characters
const S200 = 's'.repeat(200);     // slug over 100 characters

// [label, args] per event; args are the emit arguments after the event name.
const guestCases = (s) => ({
  'event:join': [
    ['nothing', []], ['number', [42]], ['null', [null]], ['array', [[s]]],
    ['wrong-typed field', [{ eventSlug: 42 }]], ['oversize slug', [S200]], ['bad characters', ['Bad Slug!']],
    ['missing field', [{}]], ['binary', [BIN]], ['empty string', ['']],
  ],
  'event:leave': [
    ['nothing', []], ['number', [42]], ['null', [null]], ['array', [[s]]],
    ['wrong-typed field', [{ eventSlug: true }]], ['oversize slug', [S200]], ['bad characters', ['no/slashes']],
    ['missing field', [{}]], ['binary', [BIN]], ['empty string', ['']],
  ],
  'photo:like': [
    ['nothing', []], ['number', [42]], ['null', [null]], ['array', [[{ eventSlug: s, photo_id: 'x' }]]],
    ['wrong-typed field', [{ eventSlug: s, photo_id: true }]], ['oversize photo_id', [{ eventSlug: s, photo_id: P200 }]],
    ['object photo_id', [{ eventSlug: s, photo_id: { id: 1 } }]], ['missing photo_id', [{ eventSlug: s }]],
    ['binary', [BIN]], ['empty photo_id', [{ eventSlug: s, photo_id: '' }]],
    ['fractional photo_id', [{ eventSlug: s, photo_id: 1.5 }]], ['missing eventSlug', [{ photo_id: 'x' }]],
    ['string payload', ['x']],
  ],
  'photo:unlike': [
    ['nothing', []], ['number', [42]], ['null', [null]], ['array', [[{ eventSlug: s, photo_id: 'x' }]]],
    ['wrong-typed field', [{ eventSlug: s, photo_id: false }]], ['oversize photo_id', [{ eventSlug: s, photo_id: P200 }]],
    ['array photo_id', [{ eventSlug: s, photo_id: ['x'] }]], ['missing photo_id', [{ eventSlug: s }]],
    ['binary', [BIN]], ['empty photo_id', [{ eventSlug: s, photo_id: '' }]],
    ['wrong-typed eventSlug', [{ eventSlug: 7, photo_id: 'x' }]],
  ],
  'photo:comment': [
    ['nothing', []], ['number', [42]], ['null', [null]], ['array', [[{ eventSlug: s, photo_id: 'x', comment: 'hi' }]]],
    ['wrong-typed field', [{ eventSlug: s, photo_id: 'x', comment: 5 }]],
    ['oversize comment', [{ eventSlug: s, photo_id: 'x', comment: C5000 }]],
    ['oversize photo_id', [{ eventSlug: s, photo_id: P200, comment: 'hi' }]],
    ['missing comment', [{ eventSlug: s, photo_id: 'x' }]], ['binary', [BIN]],
    ['missing photo_id', [{ eventSlug: s, comment: 'hi' }]],
  ],
  'no-such-event': [['object', [{ eventSlug: s }]], ['nothing', []]],
  'photo:delete': [['object', [{ eventSlug: s, photo_id: 'x' }]]],
  constructor: [['object', [{}]]],
  __proto__x: [['number', [1]]],
});

const adminCases = (s) => ({
  'photo:upload:progress': [
    ['nothing', []], ['number', [42]], ['null', [null]],
    ['array', [[{ eventSlug: s, photo_id: 'u', progress: 1, filename: 'a.jpg' }]]],
    ['wrong-typed field', [{ eventSlug: 42, photo_id: 'u', progress: 1, filename: 'a.jpg' }]],
    ['oversize photo_id', [{ eventSlug: s, photo_id: P200, progress: 1, filename: 'a.jpg' }]],
    ['object photo_id', [{ eventSlug: s, photo_id: {}, progress: 1, filename: 'a.jpg' }]],
    ['binary', [BIN]], ['missing eventSlug', [{ photo_id: 'u', progress: 1, filename: 'a.jpg' }]],
  ],
  'photo:upload:complete': [
    ['nothing', []], ['number', [42]], ['null', [null]], ['array', [[{ eventSlug: s, photo: {} }]]],
    ['wrong-typed field', [{ eventSlug: 42, photo: { id: 'x' } }]],
    ['oversize slug', [{ eventSlug: S200, photo: { id: 'x' } }]],
    ['missing photo', [{ eventSlug: s }]], ['binary', [BIN]],
    ['missing eventSlug', [{ photo: { id: 'x' } }]],
  ],
  'event:update': [
    ['nothing', []], ['number', [42]], ['null', [null]], ['array', [[{ eventSlug: s, updates: {} }]]],
    ['wrong-typed field', [{ eventSlug: [s], updates: { name: 'x' } }]],
    ['oversize slug', [{ eventSlug: S200, updates: { name: 'x' } }]],
    ['missing updates', [{ eventSlug: s }]], ['binary', [BIN]],
    ['missing eventSlug', [{ updates: { name: 'x' } }]],
  ],
  'admin:notification': [
    ['nothing', []], ['number', [42]], ['null', [null]], ['array', [[{ type: 'x', data: {} }]]],
    ['wrong-typed field', [{ type: 42, data: {} }]], ['missing type', [{ data: { a: 1 } }]],
    ['binary', [BIN]], ['string payload', ['hello']],
  ],
  'no-such-admin-event': [['object', [{}]]],
});

/**
 * Socket i (fresh, alternating websocket/polling) sends the i-th case of every event
 * and must get exactly one Invalid payload error per event name.
 */
async function barrage(makeSocket, table) {
  const rounds = Math.max(...Object.values(table).map((c) => c.length));
  const failures = [];
  for (let i = 0; i < rounds; i++) {
    const mode = i % 2 === 0 ? 'websocket' : 'polling';
    const s = await makeSocket(mode);
    try {
      const sent = [];
      for (const [event, cases] of Object.entries(table)) {
        if (i >= cases.length) continue;
        const [label, args] = cases[i];
        s.emit(event, ...args);
        sent.push([event, label]);
      }
      const results = await Promise.all(sent.map(([event, label]) =>
        waitForError(s, (p) => p && p.event === event, 4000)
          .then((err) => ({ event, label, err }))
          .catch(() => ({ event, label, err: null }))));
      for (const { event, label, err } of results) {
        if (!err) {
          failures.push(`${event} [${label}] (${mode}): no error reply`);
        } else if (err.message !== 'Invalid payload') {
          failures.push(`${event} [${label}] (${mode}): got ${JSON.stringify(err)}`);
        } else {
          try { assertTimestamp(err, 'error'); } catch (e) { failures.push(`${event} [${label}]: ${e.message}`); }
        }
      }
      if (!s.connected) failures.push(`socket ${i} (${mode}) was disconnected by the barrage`);
      // nothing but errors may come back to the sender
      const other = s.inbox.filter((e) => e.event !== 'error');
      if (other.length) failures.push(`socket ${i} received ${JSON.stringify(other.map((e) => e.event))}`);
    } finally {
      closeAll(s);
    }
  }
  return failures;
}

test('malformed guest events and unknown event names → Invalid payload, nothing relayed', T, async () => {
  // Let the admin room summary of the joins in before() go out first: it is not a relay.
  await sleep(700);
  clearInbox(watcher, adminWatcher);
  const failures = await barrage(async (mode) => {
    const s = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, mode);
    return s;
  }, guestCases(slug));
  await expectNone(watcher, '*', 300);
  await expectNone(adminWatcher, '*', 0);
  assert.deepEqual(failures, [], failures.join('\n'));
});

test('malformed admin-only events from an admin → Invalid payload, nothing relayed', T, async () => {
  // Let the admin room summary of the joins in before() go out first: it is not a relay.
  await sleep(700);
  clearInbox(watcher, adminWatcher);
  const failures = await barrage((mode) => connectToken(server, server.adminToken, mode), adminCases(slug));
  await expectNone(watcher, '*', 300);
  await expectNone(adminWatcher, '*', 0);
  assert.deepEqual(failures, [], failures.join('\n'));
});

test('after the barrage the server still answers and no state changed', T, async () => {
  // Let the admin room summary of the joins in before() go out first: it is not a relay.
  await sleep(700);
  clearInbox(watcher, adminWatcher);
  const fresh = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, 'default');
  try {
    const snap = await join(fresh, slug);
    assert.equal(snap.guestCount, 2, 'only the watcher and the fresh guest are in the room');
    assert.deepEqual(snap.likes, {}, 'no malformed like may have been recorded');
    assert.deepEqual(snap.likedByMe, []);
    const j = await waitFor(watcher, 'guest:joined', (p) => p.guestCount === 2);
    assertTimestamp(j, 'guest:joined');

    // a valid like and comment still work end to end
    fresh.emit('photo:like', { eventSlug: slug, photo_id: 'ok-1' });
    const like = await waitFor(watcher, 'photo:like', (p) => p.photo_id === 'ok-1');
    assert.equal(like.likeCount, 1);
    fresh.emit('photo:comment', { eventSlug: slug, photo_id: 'ok-1', comment: 'still alive' });
    const c = await waitFor(adminWatcher, 'photo:comment', (p) => p.photo_id === 'ok-1');
    assert.equal(c.comment, 'still alive');
    assert.ok(server.alive(), 'server process is still running');
  } finally {
    closeAll(fresh);
  }
});

for (const mode of ['websocket', 'polling']) {
  test(`a message over maxPayload (100 KB) closes only that connection (${mode})`, T, async () => {
    const big = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, mode);
    await join(big, slug);
    clearInbox(watcher);
    const gone = waitDisconnect(big, 5000);
    big.emit('photo:comment', { eventSlug: slug, photo_id: 'huge', comment: 'h'.repeat(150_000) });
    try {
      await gone;
    } finally {
      closeAll(big);
    }
    await expectNone(watcher, 'photo:comment', 300);
    // the watcher's connection is unaffected and the server still serves joins
    assert.ok(watcher.connected);
    const again = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, 'polling');
    try {
      const snap = await join(again, slug);
      assert.equal(snap.eventSlug, slug);
    } finally {
      closeAll(again);
    }
  });
}

test('a guest sending admin:join with junk arguments gets Admin access required, not a crash', T, async () => {
  const g = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug);
  try {
    g.emit('admin:join', { evil: true }, 42, null);
    const err = await waitForError(g);
    assert.ok(['Admin access required', 'Invalid payload'].includes(err.message), JSON.stringify(err));
    assert.equal(err.event ?? 'admin:join', 'admin:join');
    await expectNone(adminWatcher, 'admin:notification', 200);
  } finally {
    closeAll(g);
  }
});
