#!/usr/bin/env node
// Reference Socket.IO 4.8 server for side-by-side benchmarks of hafi-realtime.
//
// It implements the client events and payloads of SPEC §4 the way the Node server that
// hafi-realtime replaces did: everything in memory, guests accepted on `auth.guestSessionId` +
// `auth.eventSlug` (no session store), HS256 tokens checked when NEXTAUTH_SECRET is set, likes
// counted per guest session (or `user:<id>`) per photo. No rate limits, no caps: it is the
// baseline, not a product.
//
// Usage: node server.js [--port N] [--host H]     (or env SOCKET_PORT / PORT; 0 = any free port)
// Prints `listening on http://HOST:PORT` on stdout when ready; SIGTERM/SIGINT stop it.
'use strict';

const http = require('http');
const crypto = require('crypto');
const { Server } = require('socket.io');

function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}

const host = arg('--host') || process.env.SOCKET_HOST || '127.0.0.1';
const port = Number(arg('--port') ?? process.env.SOCKET_PORT ?? process.env.PORT ?? 3001);
const secret = process.env.NEXTAUTH_SECRET || '';
const SNAPSHOT_MAX = 5000;
const SLUG_RE = /^[a-z0-9-]{1,100}$/;
const SESSION_RE = /^[A-Za-z0-9_-]{1,128}$/;

const now = () => new Date().toISOString();

// ---- state (memory only) -------------------------------------------------------------------
// slug -> { totalGuests:Set<session>, peak, likes: Map<photo, Set<liker>> (insertion order =
// most recently changed last), present: Map<session, count of sockets in room> }
const rooms = new Map();
function room(slug) {
  let r = rooms.get(slug);
  if (!r) {
    r = { everGuests: new Set(), peak: 0, likes: new Map(), present: new Map() };
    rooms.set(slug, r);
  }
  return r;
}

// ---- tokens (HS256 only, exp required) -------------------------------------------------------
function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}
function verifyToken(token) {
  if (!secret || typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    if (header.alg !== 'HS256') return null;
    const sig = b64url(crypto.createHmac('sha256', secret).update(parts[0] + '.' + parts[1]).digest());
    if (sig.length !== parts[2].length || !crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(parts[2]))) return null;
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) return null;
    if (claims.user_id === undefined || typeof claims.role !== 'string') return null;
    return { kind: claims.role === 'ADMIN' ? 'admin' : 'owner', userId: String(claims.user_id) };
  } catch {
    return null;
  }
}

// ---- payload helpers -------------------------------------------------------------------------
function parseSlug(v) {
  if (v && typeof v === 'object') v = v.eventSlug;
  if (typeof v !== 'string') return null;
  const s = v.toLowerCase();
  return SLUG_RE.test(s) ? s : null;
}
function parsePhoto(d) {
  const p = d.photo_id !== undefined ? d.photo_id : d.photoId;
  if (typeof p === 'number' && Number.isInteger(p)) return String(p);
  if (typeof p === 'string' && p.length >= 1 && p.length <= 128) return p;
  return null;
}
function canAccess(socket, slug) {
  const who = socket.data.who;
  if (who.kind === 'admin') return true;
  if (who.kind === 'guest') return who.slug === slug;
  return false; // owners: no event registry in the reference server
}
function canManage(socket) {
  return socket.data.who.kind === 'admin';
}
function liker(socket) {
  const who = socket.data.who;
  return who.kind === 'guest' ? who.session : 'user:' + who.userId;
}
function guestCount(slug) {
  const r = rooms.get(slug);
  return r ? r.present.size : 0;
}

// ---- server ----------------------------------------------------------------------------------
const httpServer = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'healthy', uptime: process.uptime(), connections: io.engine.clientsCount }));
    return;
  }
  res.writeHead(404, { 'content-type': 'application/json' });
  res.end('{"error":"Not found"}');
});

const io = new Server(httpServer, {
  cors: { origin: (process.env.ALLOWED_ORIGINS || 'http://localhost:3000').split(',').map((s) => s.trim()) },
  pingInterval: 25000,
  pingTimeout: 20000,
  connectTimeout: 10000,
  maxHttpBufferSize: 1e5,
});

io.use((socket, next) => {
  const auth = socket.handshake.auth || {};
  const header = socket.handshake.headers.authorization;
  const token = auth.token || (header && header.startsWith('Bearer ') ? header.slice(7) : undefined);
  const fromToken = verifyToken(token);
  if (fromToken) {
    socket.data.who = fromToken;
    return next();
  }
  if (typeof auth.guestSessionId !== 'string' || !auth.guestSessionId) return next(new Error('Authentication required'));
  const slug = parseSlug(auth.eventSlug || auth.eventId);
  if (!slug) return next(new Error('Invalid event'));
  if (!SESSION_RE.test(auth.guestSessionId)) return next(new Error('Invalid guest session'));
  socket.data.who = { kind: 'guest', session: auth.guestSessionId, slug };
  next();
});

function invalid(socket, event) {
  socket.emit('error', { message: 'Invalid payload', event });
}

function leaveRoom(socket, slug) {
  if (!socket.data.rooms.delete(slug)) return;
  socket.leave('event:' + slug);
  const r = rooms.get(slug);
  const who = socket.data.who;
  if (r && who.kind === 'guest') {
    const n = (r.present.get(who.session) || 1) - 1;
    if (n <= 0) r.present.delete(who.session);
    else r.present.set(who.session, n);
  }
  io.to('event:' + slug).emit('guest:left', { guestCount: guestCount(slug), eventSlug: slug, timestamp: now() });
}

function broadcastLike(slug, photo, count) {
  io.to('event:' + slug).emit('photo:like', { photo_id: photo, likeCount: count, timestamp: now() });
}

io.on('connection', (socket) => {
  socket.data.rooms = new Set();

  socket.on('event:join', (raw) => {
    const slug = parseSlug(raw);
    if (!slug) return invalid(socket, 'event:join');
    if (!canAccess(socket, slug)) return socket.emit('error', { message: 'Access denied to this event' });
    const r = room(slug);
    const who = socket.data.who;
    if (!socket.data.rooms.has(slug)) {
      socket.data.rooms.add(slug);
      socket.join('event:' + slug);
      if (who.kind === 'guest') {
        r.present.set(who.session, (r.present.get(who.session) || 0) + 1);
        r.everGuests.add(who.session);
      }
    }
    const count = r.present.size;
    if (count > r.peak) r.peak = count;
    io.to('event:' + slug).emit('guest:joined', { guestCount: count, eventSlug: slug, timestamp: now() });
    const likes = {};
    const mine = [];
    const me = liker(socket);
    const entries = [...r.likes.entries()];
    for (let i = entries.length - 1, n = 0; i >= 0 && n < SNAPSHOT_MAX; i--, n++) {
      const [photo, set] = entries[i];
      likes[photo] = set.size;
      if (set.has(me)) mine.push(photo);
    }
    socket.emit('event:snapshot', {
      eventSlug: slug,
      guestCount: count,
      totalGuests: r.everGuests.size,
      peakGuests: r.peak,
      likes,
      likedByMe: mine,
      timestamp: now(),
    });
  });

  socket.on('event:leave', (raw) => {
    const slug = parseSlug(raw);
    if (!slug) return invalid(socket, 'event:leave');
    leaveRoom(socket, slug);
  });

  const likeHandler = (name, add) => (d) => {
    if (!d || typeof d !== 'object') return invalid(socket, name);
    const slug = parseSlug(d.eventSlug);
    const photo = parsePhoto(d);
    if (!slug || photo === null) return invalid(socket, name);
    if (!canAccess(socket, slug)) return socket.emit('error', { message: 'Access denied to this event' });
    const r = room(slug);
    if (socket.data.who.kind === 'admin' && add && typeof d.likeCount === 'number') {
      // The web app's database is the source: keep a set of the given size.
      const set = new Set();
      for (let i = 0; i < d.likeCount; i++) set.add('admin-set:' + i);
      r.likes.delete(photo);
      r.likes.set(photo, set);
      return broadcastLike(slug, photo, d.likeCount);
    }
    let set = r.likes.get(photo);
    const me = liker(socket);
    if (add) {
      if (!set) set = new Set();
      if (set.has(me)) return;
      set.add(me);
    } else {
      if (!set || !set.has(me)) return;
      set.delete(me);
    }
    r.likes.delete(photo); // most recently changed last
    r.likes.set(photo, set);
    broadcastLike(slug, photo, set.size);
  };
  socket.on('photo:like', likeHandler('photo:like', true));
  socket.on('photo:unlike', likeHandler('photo:unlike', false));

  socket.on('photo:comment', (d) => {
    if (!d || typeof d !== 'object') return invalid(socket, 'photo:comment');
    const slug = parseSlug(d.eventSlug);
    const photo = parsePhoto(d);
    const c = d.comment;
    const msg = typeof c === 'string' ? c : c && typeof c === 'object' ? c.message : undefined;
    if (!slug || photo === null || typeof msg !== 'string' || !msg.trim() || msg.length > 2000) return invalid(socket, 'photo:comment');
    if (!canAccess(socket, slug)) return socket.emit('error', { message: 'Access denied to this event' });
    io.to('event:' + slug).emit('photo:comment', { photo_id: photo, comment: c, eventSlug: slug, timestamp: now() });
  });

  const manage = (name, build) => (d) => {
    if (!d || typeof d !== 'object') return invalid(socket, name);
    const slug = parseSlug(d.eventSlug);
    if (!slug) return invalid(socket, name);
    if (!canManage(socket)) return socket.emit('error', { message: 'Access denied to this event' });
    io.to('event:' + slug).emit(name, { ...build(d), timestamp: now() });
  };
  socket.on('photo:upload:progress', manage('photo:upload:progress', (d) => ({ photo_id: parsePhoto(d), progress: d.progress, filename: d.filename })));
  socket.on('photo:upload:complete', manage('photo:upload:complete', (d) => ({ photo: d.photo })));
  socket.on('event:update', manage('event:update', (d) => ({ updates: d.updates })));

  socket.on('admin:join', () => {
    if (socket.data.who.kind !== 'admin') return socket.emit('error', { message: 'Admin access required' });
    socket.join('admin');
  });
  socket.on('admin:notification', (d) => {
    if (socket.data.who.kind !== 'admin') return socket.emit('error', { message: 'Admin access required' });
    if (!d || typeof d !== 'object' || typeof d.type !== 'string') return invalid(socket, 'admin:notification');
    io.to('admin').emit('admin:notification', { type: d.type, data: d.data, timestamp: now() });
  });

  socket.on('disconnect', () => {
    for (const slug of [...socket.data.rooms]) leaveRoom(socket, slug);
  });
});

httpServer.listen(port, host, () => {
  const a = httpServer.address();
  process.stdout.write(`listening on http://${host}:${a.port}\n`);
});

function stop() {
  io.close();
  httpServer.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 3000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
