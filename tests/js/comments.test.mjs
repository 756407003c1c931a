// photo:comment validation and relay (SPEC §4, §4.2).
// The per-socket comment limit is 3 per 5 s and error replies are limited to one
// per second per event name per socket, so every case below uses its own socket.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, createEvent, createGuestSession, connectGuest, connectToken,
  ownerToken, waitFor, waitForError, expectNone, clearInbox, join, assertTimestamp, closeAll,
} from './harness.mjs';

let server;
let slug;
let observer; // a guest in the room that watches everything
let observerPoll; // the same, over long-polling
const ownerId = 'owner-comments-1';

before(async () => {
  server = await startServer();
  ({ slug } = await createEvent(server, { ownerId }));
  observer = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, 'websocket');
  observerPoll = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, 'polling');
  await join(observer, slug);
  await join(observerPoll, slug);
});
after(async () => { await stopServer(server); });

const T = { timeout: 20_000 };

async function sender(mode = 'websocket') {
  const s = await connectGuest(server, (await createGuestSession(server, slug)).guestSessionId, slug, mode);
  await join(s, slug);
  return s;
}

/** Send a comment from a fresh socket and return what the observers received. */
async function relay(comment, { photo_id = 'c1', mode = 'websocket' } = {}) {
  const s = await sender(mode);
  try {
    const pid = String(photo_id);
    s.emit('photo:comment', { eventSlug: slug, photo_id, comment });
    const [a, b, own] = await Promise.all([
      waitFor(observer, 'photo:comment', (p) => p.photo_id === pid),
      waitFor(observerPoll, 'photo:comment', (p) => p.photo_id === pid),
      waitFor(s, 'photo:comment', (p) => p.photo_id === pid),
    ]);
    assert.deepEqual(a, b);
    assert.deepEqual(a, own);
    assert.equal(typeof a.photo_id, 'string');
    assertTimestamp(a, 'photo:comment');
    return a;
  } finally {
    closeAll(s);
  }
}

/** Send a comment that must be refused with Invalid payload; nobody may receive it. */
async function refused(comment, label) {
  const s = await sender();
  try {
    clearInbox(observer, observerPoll);
    const payload = { eventSlug: slug, photo_id: 'bad', comment };
    if (comment === undefined) delete payload.comment;
    s.emit('photo:comment', payload);
    const err = await waitForError(s).catch((e) => { throw new Error(`${label}: ${e.message}`); });
    assert.equal(err.message, 'Invalid payload', `${label}: ${JSON.stringify(err)}`);
    assert.equal(err.event, 'photo:comment', `${label}: ${JSON.stringify(err)}`);
    assertTimestamp(err, 'error');
    await expectNone(s, 'photo:comment', 300);
    await expectNone(observer, 'photo:comment', 0);
    await expectNone(observerPoll, 'photo:comment', 0);
  } finally {
    closeAll(s);
  }
}

test('a string comment is relayed to the room', T, async () => {
  const p = await relay('Hello world', { photo_id: 'c-str' });
  assert.equal(p.photo_id, 'c-str');
  assert.equal(p.comment, 'Hello world');
});

test('a comment from a polling client is relayed, integer photo_id sent out as a string', T, async () => {
  const p = await relay('from polling', { photo_id: 9001, mode: 'polling' });
  assert.equal(p.photo_id, '9001');
  assert.equal(p.comment, 'from polling');
});

test('the message is trimmed', T, async () => {
  const p = await relay('   padded comment \n\t ', { photo_id: 'c-trim' });
  assert.equal(p.comment, 'padded comment');
});

test('an object comment keeps message (trimmed) and guest_name', T, async () => {
  const p = await relay({ message: '  Nice shot!  ', guest_name: 'Ana' }, { photo_id: 'c-obj' });
  assert.equal(typeof p.comment, 'object', JSON.stringify(p));
  assert.equal(p.comment.message, 'Nice shot!');
  assert.equal(p.comment.guest_name, 'Ana');
});

test('control characters other than newline and tab are removed', T, async () => {
  const p = await relay('a\u0000b\u0007c\u001b[0m\u0008d\r\nline2\tcol\u007f!', { photo_id: 'c-ctl' });
  assert.equal(p.comment, 'abc[0md\nline2\tcol!');
  const q = await relay({ message: 'x\u0001y\nz', guest_name: 'Bo' }, { photo_id: 'c-ctl-obj' });
  assert.equal(q.comment.message, 'xy\nz');
});

test('HTML is not escaped on the wire', T, async () => {
  const html = '<b>bold</b> <script>alert("x")</script> & &amp; \'q\' <img src=x onerror=alert(1)>';
  const p = await relay(html, { photo_id: 'c-html' });
  assert.equal(p.comment, html);
  const q = await relay({ message: '<i>hi</i>', guest_name: '<b>Eve</b>' }, { photo_id: 'c-html-obj' });
  assert.equal(q.comment.message, '<i>hi</i>');
  assert.equal(q.comment.guest_name, '<b>Eve</b>');
});

test('2000 characters (after trimming) is the longest accepted message', T, async () => {
  const long = 'x'.repeat(2000);
  const p = await relay(`  ${long}  `, { photo_id: 'c-2000' });
  assert.equal(p.comment, long);
  const unicode = 'é'.repeat(2000); // characters, not bytes
  const q = await relay(unicode, { photo_id: 'c-2000-u' });
  assert.equal(q.comment, unicode);
});

test('owner and admin comments are relayed too', T, async () => {
  const owner = await connectToken(server, ownerToken(server, ownerId));
  const admin = await connectToken(server, server.adminToken, 'polling');
  try {
    await join(owner, slug);
    await join(admin, slug);
    owner.emit('photo:comment', { eventSlug: slug, photo_id: 'c-owner', comment: 'from the photographer' });
    const a = await waitFor(observer, 'photo:comment', (p) => p.photo_id === 'c-owner');
    assert.equal(a.comment, 'from the photographer');
    admin.emit('photo:comment', { eventSlug: slug, photoId: 'c-admin', comment: { message: 'from the studio' } });
    const b = await waitFor(observerPoll, 'photo:comment', (p) => p.photo_id === 'c-admin');
    assert.equal(b.comment.message, 'from the studio');
  } finally {
    closeAll(owner, admin);
  }
});

test('empty, whitespace-only and too long comments are refused with Invalid payload', T, async () => {
  await refused('', 'empty string');
  await refused('   \n\t  ', 'whitespace only');
  await refused('x'.repeat(2001), '2001 characters');
  await refused('y'.repeat(5000), '5000 characters');
  await refused({ message: '' }, 'object with empty message');
  await refused({ message: '   ' }, 'object with blank message');
  await refused({ message: 'z'.repeat(2001), guest_name: 'A' }, 'object with 2001-char message');
});

test('wrong-typed or missing comments are refused with Invalid payload', T, async () => {
  await refused(undefined, 'missing comment');
  await refused(null, 'null comment');
  await refused(12345, 'number comment');
  await refused(['a', 'b'], 'array comment');
  await refused({ guest_name: 'A' }, 'object without message');
  await refused({ message: 42 }, 'object with numeric message');
  await refused({ message: 'ok', guest_name: 'n'.repeat(300) }, 'guest_name over 256 characters');
});

test('a guest of another event cannot comment here', T, async () => {
  const { slug: other } = await createEvent(server);
  const s = await connectGuest(server, (await createGuestSession(server, other)).guestSessionId, other);
  try {
    clearInbox(observer);
    s.emit('photo:comment', { eventSlug: slug, photo_id: 'c-x', comment: 'sneaky' });
    const err = await waitForError(s);
    assert.equal(typeof err.message, 'string');
    assert.notEqual(err.message, 'Invalid payload');
    await expectNone(observer, 'photo:comment', 500);
  } finally {
    closeAll(s);
  }
});
