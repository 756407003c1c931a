// Handshake authentication and refusals (SPEC §3).
import { before, after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, stopServer, createEvent, createGuestSession, patchEvent, connect, connectError,
  mintToken, ownerToken, waitFor, waitForError, join, closeAll, sleep, randomId,
} from './harness.mjs';

let server;
let slugA;
let slugB;
let sessionA; // a guest session of event A

before(async () => {
  server = await startServer();
  ({ slug: slugA } = await createEvent(server));
  ({ slug: slugB } = await createEvent(server));
  sessionA = (await createGuestSession(server, slugA)).guestSessionId;
});
after(async () => { await stopServer(server); });

const T = { timeout: 15_000 };
const MODES = ['websocket', 'polling', 'default'];

describe('refusals', () => {
  for (const mode of MODES) {
    test(`no auth at all → "Authentication required" (${mode})`, T, async () => {
      assert.equal(await connectError(server, { mode }), 'Authentication required');
    });
  }

  test('empty auth object → "Authentication required"', T, async () => {
    assert.equal(await connectError(server, { auth: {} }), 'Authentication required');
  });

  for (const mode of MODES) {
    test(`unknown guestSessionId for a real event → "Invalid guest session" (${mode})`, T, async () => {
      const msg = await connectError(server, { mode, auth: { guestSessionId: randomId('guest_nope'), eventSlug: slugA } });
      assert.equal(msg, 'Invalid guest session');
    });
  }

  test('a session of event A presented for event B → "Invalid guest session"', T, async () => {
    const msg = await connectError(server, { auth: { guestSessionId: sessionA, eventSlug: slugB } });
    assert.equal(msg, 'Invalid guest session');
    const viaEventId = await connectError(server, { mode: 'polling', auth: { guestSessionId: sessionA, eventId: slugB } });
    assert.equal(viaEventId, 'Invalid guest session');
  });

  test('a session id without an eventSlug → "Invalid event"', T, async () => {
    assert.equal(await connectError(server, { auth: { guestSessionId: sessionA } }), 'Invalid event');
    assert.equal(await connectError(server, { auth: { guestSessionId: sessionA, eventSlug: '' } }), 'Invalid event');
    assert.equal(await connectError(server, { auth: { guestSessionId: sessionA, eventSlug: null } }), 'Invalid event');
  });

  test('a session id with a malformed eventSlug → "Invalid event"', T, async () => {
    for (const eventSlug of ['not a slug!', 'a/b', 'x'.repeat(101), 12345, { slug: slugA }, ['a']]) {
      const msg = await connectError(server, { auth: { guestSessionId: sessionA, eventSlug } });
      assert.equal(msg, 'Invalid event', `eventSlug ${JSON.stringify(eventSlug).slice(0, 40)}`);
    }
  });

  test('a session id for a well-formed but unknown event is refused', T, async () => {
    const msg = await connectError(server, { auth: { guestSessionId: randomId('guest_'), eventSlug: 'no-such-event-xyz' } });
    assert.ok(['Invalid event', 'Invalid guest session'].includes(msg), msg);
  });

  test('an ARCHIVED event refuses its guests with "Invalid event"', T, async () => {
    const { slug } = await createEvent(server);
    const s = (await createGuestSession(server, slug)).guestSessionId;
    // accepted while ACTIVE
    const ok = await connect(server, { auth: { guestSessionId: s, eventSlug: slug } });
    closeAll(ok);
    await patchEvent(server, slug, { status: 'ARCHIVED' });
    assert.equal(await connectError(server, { auth: { guestSessionId: s, eventSlug: slug } }), 'Invalid event');
  });

  test('an expired guest session → "Invalid guest session"', T, async () => {
    const expiresAt = new Date(Date.now() + 1500).toISOString();
    const s = (await createGuestSession(server, slugA, { expiresAt })).guestSessionId;
    await sleep(2100);
    assert.equal(await connectError(server, { auth: { guestSessionId: s, eventSlug: slugA } }), 'Invalid guest session');
  });

  test('a guest session id with the wrong type is refused', T, async () => {
    for (const guestSessionId of [12345, { id: sessionA }, ['x'], '']) {
      const msg = await connectError(server, { auth: { guestSessionId, eventSlug: slugA } });
      assert.ok(['Invalid guest session', 'Authentication required'].includes(msg),
        `guestSessionId ${JSON.stringify(guestSessionId)} → ${msg}`);
    }
  });

  test('garbage token and no guest credentials → "Authentication required"', T, async () => {
    assert.equal(await connectError(server, { auth: { token: 'garbage' } }), 'Authentication required');
    assert.equal(await connectError(server, { mode: 'polling', auth: { token: 'a.b.c' } }), 'Authentication required');
    assert.equal(await connectError(server, { auth: { token: 12345 } }), 'Authentication required');
  });

  test('bad tokens of every kind fall through to "Authentication required"', T, async () => {
    const cases = {
      'wrong secret': mintToken('x'.repeat(48), { user_id: 'a', role: 'ADMIN' }),
      expired: mintToken(server.secret, { user_id: 'a', role: 'ADMIN', exp: Math.floor(Date.now() / 1000) - 120 }),
      'no exp': mintToken(server.secret, { user_id: 'a', role: 'ADMIN' }, { noExp: true }),
      'no role': mintToken(server.secret, { user_id: 'a' }),
      'no user_id': mintToken(server.secret, { role: 'ADMIN' }),
      'alg none': (() => {
        const t = mintToken(server.secret, { user_id: 'a', role: 'ADMIN' }, { header: { alg: 'none', typ: 'JWT' } });
        return t.slice(0, t.lastIndexOf('.') + 1);
      })(),
      'alg HS512 header': mintToken(server.secret, { user_id: 'a', role: 'ADMIN' }, { header: { alg: 'HS512', typ: 'JWT' } }),
    };
    for (const [label, token] of Object.entries(cases)) {
      const msg = await connectError(server, { auth: { token } });
      assert.equal(msg, 'Authentication required', label);
    }
  });
});

describe('accepted identities', () => {
  test('an invalid token with valid guest credentials falls through to the guest', T, async () => {
    const s = await connect(server, { mode: 'polling', auth: { token: 'garbage', guestSessionId: sessionA, eventSlug: slugA } });
    try {
      const snap = await join(s, slugA);
      assert.equal(snap.eventSlug, slugA);
      s.emit('admin:join');
      const err = await waitForError(s);
      assert.equal(err.message, 'Admin access required');
    } finally {
      closeAll(s);
    }
  });

  test('a numeric user_id in an owner token matches the event ownerId', T, async () => {
    const { slug } = await createEvent(server, { ownerId: '4242' });
    const s = await connect(server, { auth: { token: mintToken(server.secret, { user_id: 4242, role: 'PHOTOGRAPHER' }) } });
    try {
      const snap = await join(s, slug);
      assert.equal(snap.eventSlug, slug);
    } finally {
      closeAll(s);
    }
  });

  test('a token in the handshake Authorization header is accepted (websocket and polling)', T, async () => {
    for (const mode of ['websocket', 'polling']) {
      const s = await connect(server, { mode, extraHeaders: { Authorization: `Bearer ${server.adminToken}` } });
      try {
        s.emit('admin:join');
        await sleep(300); // admin:join has no reply
        s.emit('admin:notification', { type: `hdr-${mode}`, data: {} });
        const n = await waitFor(s, 'admin:notification', (p) => p.type === `hdr-${mode}`);
        assert.equal(n.type, `hdr-${mode}`);
      } finally {
        closeAll(s);
      }
    }
  });

  test('an admin token may join any event; an owner token its own', T, async () => {
    const { slug } = await createEvent(server, { ownerId: 'conn-owner' });
    const a = await connect(server, { auth: { token: server.adminToken } });
    const o = await connect(server, { mode: 'polling', auth: { token: ownerToken(server, 'conn-owner') } });
    try {
      assert.equal((await join(a, slug)).eventSlug, slug);
      assert.equal((await join(o, slug)).eventSlug, slug);
      assert.equal((await join(a, slugA)).eventSlug, slugA);
    } finally {
      closeAll(a, o);
    }
  });
});
