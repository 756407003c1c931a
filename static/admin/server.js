/*
 * hafi-realtime admin page: talking to the server. The admin HTTP API (errors come back as
 * ApiError with a message fit to show; a 401 on any call but the login signs the page out), the
 * HTTP re-read of rooms and events, and the live Socket.IO connection that routes the server's
 * events to the feed and the cards and shows its state in the top bar.
 *
 * Counts are re-read over HTTP on sign-in, on every reconnect, when the registry changes, on the
 * Refresh button and once a minute while the page is in view; socket events only adjust them.
 */

import { $, setText, state, toast } from './page.js';
import { signOut } from './app.js';
import { addFeed, onAdminLike, onAdminRoom, onComment, onNotification } from './feed.js';
import { renderRooms } from './rooms.js';
import { HafiSio } from './sio.js';

// ---------------------------------------------------------------- HTTP API

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (state.session) headers.Authorization = 'Bearer ' + state.session.token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'same-origin',
    });
  } catch (e) {
    throw new ApiError(0, 'Cannot reach the server');
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (e) {
      data = null;
    }
  }
  if (!res.ok) {
    let message = data && typeof data.error === 'string' ? data.error : 'Request failed (' + res.status + ')';
    if (res.status === 429) {
      const retry = res.headers.get('Retry-After');
      message = 'Too many attempts' + (retry ? ', try again in ' + retry + ' s' : ', try again shortly');
    }
    if (res.status === 401 && path !== '/api/admin/login' && state.session) {
      signOut('Your session has ended. Please sign in again.');
    }
    throw new ApiError(res.status, message);
  }
  return data;
}

// ---------------------------------------------------------------- re-reading rooms and events

export async function refresh(quiet) {
  const btn = $('rooms-refresh');
  btn.disabled = true;
  try {
    const [roomsRes, eventsRes] = await Promise.all([
      api('GET', '/api/admin/rooms'),
      api('GET', '/api/admin/events'),
    ]);
    const rooms = roomsRes && Array.isArray(roomsRes.rooms) ? roomsRes.rooms : [];
    const events = eventsRes && Array.isArray(eventsRes.events) ? eventsRes.events : [];
    state.events.clear();
    for (const e of events) if (e && typeof e.slug === 'string') state.events.set(e.slug, e);
    const seen = new Set();
    for (const r of rooms) {
      if (!r || typeof r.slug !== 'string') continue;
      seen.add(r.slug);
      const prev = state.rooms.get(r.slug) || {};
      // The HTTP list may carry no top photos: then keep what the socket told us.
      const topPhotos = Array.isArray(r.topPhotos) ? r.topPhotos : prev.topPhotos || [];
      state.rooms.set(r.slug, Object.assign({}, prev, r, { topPhotos }));
    }
    for (const slug of Array.from(state.rooms.keys())) {
      if (!seen.has(slug) && !state.events.has(slug)) state.rooms.delete(slug);
    }
    state.loaded = true;
    renderRooms();
    $('stale-note').hidden = !state.sio || state.sio.state === 'connected';
  } catch (e) {
    if (e.status !== 401 && !quiet) toast(e.message, 'error');
  } finally {
    btn.disabled = false;
  }
}

$('rooms-refresh').addEventListener('click', () => refresh());

// Counts and registry changes arrive over the socket (`admin:event`); re-read now and then
// anyway while the page is in view, in case a change happened while the socket was down.
setInterval(() => {
  if (state.session && state.loaded && document.visibilityState === 'visible') refresh(true);
}, 60000);

// ---------------------------------------------------------------- the live connection

export function connectSocket() {
  if (state.sio) state.sio.close();
  const sio = new HafiSio({ auth: () => ({ token: state.session ? state.session.token : '' }) });
  state.sio = sio;
  sio.onState(renderConnection);
  sio.on('connect', () => {
    sio.emit('admin:join');
    // Counts are state: after any reconnect, read them again rather than trust what we had.
    if (state.loaded) refresh(true);
  });
  sio.on('connect_error', async (err) => {
    const msg = err && err.message;
    if (msg === 'Authentication required' || msg === 'Authentication failed') {
      // The token may have expired or the secret changed: ask the API, which signs us out on 401.
      try {
        await api('GET', '/api/admin/rooms');
      } catch (e) { /* handled in api() */ }
    }
  });
  sio.on('error', (data) => {
    const message = data && typeof data.message === 'string' ? data.message : 'Server error';
    if (message === 'Admin access required') {
      signOut('This account is not an admin.');
      return;
    }
    addFeed({ kind: 'notice', level: 'warn', title: 'Server', text: message, ts: Date.now() });
  });
  sio.on('admin:room', onAdminRoom);
  sio.on('admin:like', onAdminLike);
  sio.on('admin:comment', onComment);
  sio.on('photo:comment', onComment);
  sio.on('admin:notification', onNotification);
  // The event registry changed (here, in the web app, or on another admin's page).
  sio.on('admin:event', () => {
    if (state.refreshTimer) return;
    state.refreshTimer = setTimeout(() => { state.refreshTimer = null; if (state.loaded) refresh(true); }, 300);
  });
  sio.connect();
}

let connTicker = null;
function renderConnection(st, info) {
  const pill = $('conn');
  const text = $('conn-text');
  clearInterval(connTicker);
  connTicker = null;
  let ui = st;
  if (st === 'connected') {
    setText(text, 'Live');
    pill.title = 'Connected: counts update live';
  } else if (st === 'connecting') {
    setText(text, 'Connecting…');
    pill.title = 'Connecting to the server';
  } else if (st === 'waiting') {
    ui = 'offline';
    const tick = () => {
      const s = Math.max(0, Math.ceil((info.retryAt - Date.now()) / 1000));
      setText(text, s > 0 ? 'Offline · ' + s + 's' : 'Offline');
    };
    tick();
    connTicker = setInterval(tick, 500);
    pill.title = (info.error ? info.error + '. ' : '') + 'Tap to retry now.';
  } else {
    ui = 'offline';
    setText(text, 'Offline');
  }
  pill.dataset.state = ui;
  $('app-view').dataset.conn = ui;
  $('stale-note').hidden = st === 'connected' || !state.loaded;
}

$('conn').addEventListener('click', () => {
  if (state.sio) state.sio.retryNow();
});
window.addEventListener('online', () => state.sio && state.sio.retryNow());
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && state.sio) state.sio.retryNow();
});
