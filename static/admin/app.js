/*
 * hafi-realtime admin page.
 *
 * Every piece of text that came from the server (event names, slugs, photo ids, comments,
 * notification data) is put into the page with textContent / createTextNode only: no HTML parsing
 * of data anywhere, so guest-supplied markup stays inert.
 */
(function () {
  'use strict';

  const TOKEN_KEY = 'hafi.admin.session';
  const BASE_KEY = 'hafi.admin.galleryBase';
  const FEED_MAX = 300;
  const STATUSES = ['DRAFT', 'ACTIVE', 'ARCHIVED'];
  const STATUS_LABEL = { DRAFT: 'Draft', ACTIVE: 'Active', ARCHIVED: 'Archived' };
  const SLUG_RE = /^[a-z0-9-]{1,100}$/;
  const CODE_RE = /^[A-Z0-9]{6}$/;

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- DOM helper (text only)

  /**
   * h('div', {class: 'x', dataset: {slug}, on: {click}}, child, 'text', ...)
   * Strings and numbers become text nodes; attributes are set with setAttribute.
   */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === undefined || value === null || value === false) continue;
        if (key === 'class') el.className = value;
        else if (key === 'dataset') Object.assign(el.dataset, value);
        else if (key === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
        else if (key === 'text') el.textContent = String(value);
        else if (key === 'hidden') el.hidden = true;
        else el.setAttribute(key, value === true ? '' : String(value));
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) append(el, child);
      else if (child instanceof Node) el.appendChild(child);
      else el.appendChild(document.createTextNode(String(child)));
    }
  }

  function setText(el, value) {
    const s = String(value);
    if (el.textContent !== s) el.textContent = s;
  }

  function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
  }

  // ---------------------------------------------------------------- formatting

  const numberFmt = new Intl.NumberFormat();
  const fmtNum = (n) => (typeof n === 'number' && isFinite(n) ? numberFmt.format(n) : '0');

  function parseTime(value) {
    if (!value) return null;
    const t = Date.parse(value);
    return isNaN(t) ? null : t;
  }

  function relTime(ms) {
    if (ms === null || ms === undefined) return 'never';
    const diff = Math.max(0, Date.now() - ms);
    const s = Math.round(diff / 1000);
    if (s < 10) return 'just now';
    if (s < 60) return s + ' s ago';
    const m = Math.round(s / 60);
    if (m < 60) return m + ' min ago';
    const hrs = Math.round(m / 60);
    if (hrs < 24) return hrs + ' h ago';
    const d = Math.round(hrs / 24);
    if (d < 30) return d + (d === 1 ? ' day ago' : ' days ago');
    return new Date(ms).toLocaleDateString();
  }

  function clockTime(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  }

  function truncate(s, max) {
    const str = String(s);
    return str.length > max ? str.slice(0, max - 1) + '…' : str;
  }

  function asText(value) {
    if (value === null || value === undefined) return '';
    if (typeof value === 'string') return value;
    if (typeof value === 'number' || typeof value === 'boolean') return String(value);
    try {
      return JSON.stringify(value);
    } catch (e) {
      return '[unreadable]';
    }
  }

  // ---------------------------------------------------------------- session

  function loadSession() {
    try {
      const raw = sessionStorage.getItem(TOKEN_KEY);
      if (!raw) return null;
      const s = JSON.parse(raw);
      if (!s || typeof s.token !== 'string') return null;
      const exp = parseTime(s.expiresAt);
      if (exp !== null && exp <= Date.now()) return null;
      return s;
    } catch (e) {
      return null;
    }
  }

  function saveSession(s) {
    try {
      sessionStorage.setItem(TOKEN_KEY, JSON.stringify(s));
    } catch (e) { /* private mode: the session lives in memory only */ }
  }

  function dropSession() {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* ignore */ }
  }

  const state = {
    session: null,
    sio: null,
    events: new Map(), // slug -> registry record
    rooms: new Map(), // slug -> room stats
    cards: new Map(), // slug -> card elements
    open: new Set(), // slugs whose manage panel is open
    feedFilter: 'all',
    unseenFeed: 0,
    recentComments: new Map(),
    expiryTimer: null,
    refreshTimer: null, // pending re-read after an admin:event
    loaded: false,
  };

  // ---------------------------------------------------------------- HTTP

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, body) {
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

  // ---------------------------------------------------------------- toasts

  function toast(message, kind) {
    const el = h('div', { class: 'toast' + (kind ? ' toast-' + kind : '') }, message);
    $('toasts').appendChild(el);
    setTimeout(() => el.classList.add('toast-out'), 3600);
    setTimeout(() => el.remove(), 4000);
  }

  // ---------------------------------------------------------------- views

  function showLogin(message) {
    $('app-view').hidden = true;
    $('login-view').hidden = false;
    $('logout').hidden = true;
    $('conn').hidden = true;
    const err = $('login-error');
    if (message) {
      err.textContent = message;
      err.hidden = false;
    } else {
      err.hidden = true;
    }
    $('login-password').value = '';
    setTimeout(() => ($('login-username').value ? $('login-password') : $('login-username')).focus(), 0);
  }

  function showApp() {
    $('login-view').hidden = true;
    $('app-view').hidden = false;
    $('logout').hidden = false;
    $('conn').hidden = false;
  }

  function signOut(message) {
    if (state.sio) {
      state.sio.close();
      state.sio = null;
    }
    clearTimeout(state.expiryTimer);
    state.session = null;
    dropSession();
    state.events.clear();
    state.rooms.clear();
    state.cards.clear();
    state.open.clear();
    clear($('rooms'));
    clear($('feed'));
    state.loaded = false;
    updateFeedEmpty();
    showLogin(message);
  }

  function startSession(session) {
    state.session = session;
    clearTimeout(state.expiryTimer);
    const exp = parseTime(session.expiresAt);
    if (exp !== null) {
      const ms = exp - Date.now();
      // setTimeout overflows past ~24.8 days; sessions are much shorter than that.
      if (ms < 2147483000) state.expiryTimer = setTimeout(() => signOut('Your session has expired. Please sign in again.'), Math.max(0, ms));
    }
    showApp();
    connectSocket();
    refresh();
  }

  // ---------------------------------------------------------------- login

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const username = $('login-username').value.trim();
    const password = $('login-password').value;
    const err = $('login-error');
    err.hidden = true;
    if (!username || !password) {
      err.textContent = 'Enter your username and password.';
      err.hidden = false;
      return;
    }
    const button = $('login-submit');
    button.disabled = true;
    button.textContent = 'Signing in…';
    try {
      const data = await api('POST', '/api/admin/login', { username, password });
      if (!data || typeof data.token !== 'string') throw new ApiError(500, 'Unexpected answer from the server');
      const session = { token: data.token, expiresAt: data.expiresAt || null, username };
      saveSession(session);
      $('login-password').value = '';
      startSession(session);
    } catch (e) {
      err.textContent = e.status === 401 ? 'Wrong username or password.' : e.message;
      err.hidden = false;
      $('login-password').select();
    } finally {
      button.disabled = false;
      button.textContent = 'Sign in';
    }
  });

  $('logout').addEventListener('click', () => signOut());

  // ---------------------------------------------------------------- socket

  function connectSocket() {
    if (state.sio) state.sio.close();
    const sio = new window.HafiSio({ auth: () => ({ token: state.session ? state.session.token : '' }) });
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

  // ---------------------------------------------------------------- data

  async function refresh(quiet) {
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

  function roomOf(slug) {
    let r = state.rooms.get(slug);
    if (!r) {
      r = { slug, guestCount: 0, peakGuests: 0, totalGuests: 0, likes: 0, topPhotos: [], lastAccessAt: null, inMemory: false };
      state.rooms.set(slug, r);
    }
    return r;
  }

  function num(v, fallback) {
    return typeof v === 'number' && isFinite(v) ? v : fallback;
  }

  function onAdminRoom(data) {
    if (!data || typeof data.slug !== 'string') return;
    const r = roomOf(data.slug);
    r.guestCount = num(data.guestCount, r.guestCount);
    r.peakGuests = num(data.peakGuests, r.peakGuests);
    r.totalGuests = num(data.totalGuests, r.totalGuests);
    r.likes = num(data.likes, r.likes);
    if (Array.isArray(data.topPhotos)) r.topPhotos = data.topPhotos;
    if (data.lastAccessAt !== undefined) r.lastAccessAt = data.lastAccessAt;
    if (typeof data.inMemory === 'boolean') r.inMemory = data.inMemory;
    r.updatedAt = Date.now();
    renderRooms(data.slug);
  }

  function photoIdOf(d) {
    if (!d) return '';
    const id = d.photo_id !== undefined ? d.photo_id : d.photoId;
    return id === undefined || id === null ? '' : String(id);
  }

  function tsOf(d) {
    const t = d && parseTime(d.timestamp);
    return t === null || t === undefined ? Date.now() : t;
  }

  function onAdminLike(data) {
    if (!data) return;
    const slug = typeof data.eventSlug === 'string' ? data.eventSlug : '';
    const photo = photoIdOf(data);
    const count = num(data.likeCount, null);
    if (slug && photo && count !== null) {
      const r = roomOf(slug);
      const list = Array.isArray(r.topPhotos) ? r.topPhotos.slice() : [];
      const i = list.findIndex((p) => photoIdOf(p) === photo);
      if (i >= 0) list[i] = Object.assign({}, list[i], { likeCount: count });
      else list.push({ photo_id: photo, likeCount: count });
      list.sort((a, b) => num(b.likeCount, 0) - num(a.likeCount, 0));
      r.topPhotos = list.slice(0, 5);
      r.lastAccessAt = data.timestamp || r.lastAccessAt;
      renderRooms(slug);
    }
    addFeed({
      kind: 'like',
      slug,
      title: 'Like',
      text: photo ? 'Photo ' + truncate(photo, 80) + ' now has ' + fmtNum(count || 0) + (count === 1 ? ' like' : ' likes') : 'A photo was liked',
      photo,
      ts: tsOf(data),
    });
  }

  function onComment(data) {
    if (!data) return;
    const slug = typeof data.eventSlug === 'string' ? data.eventSlug : '';
    const photo = photoIdOf(data);
    const c = data.comment;
    let message = '';
    let author = '';
    if (typeof c === 'string') message = c;
    else if (c && typeof c === 'object') {
      message = asText(c.message !== undefined ? c.message : c);
      if (typeof c.guest_name === 'string' && c.guest_name.trim()) author = c.guest_name.trim();
      else if (typeof c.guestName === 'string' && c.guestName.trim()) author = c.guestName.trim();
    } else message = asText(c);
    // A comment can arrive both as admin:comment and photo:comment: show it once.
    const key = [slug, photo, message, data.timestamp || ''].join('\u0000');
    const now = Date.now();
    for (const [k, t] of state.recentComments) if (now - t > 10000) state.recentComments.delete(k);
    if (state.recentComments.has(key)) return;
    state.recentComments.set(key, now);
    addFeed({
      kind: 'comment',
      slug,
      title: author ? truncate(author, 60) : 'Guest comment',
      text: truncate(message, 2000),
      photo,
      ts: tsOf(data),
    });
  }

  function onNotification(data) {
    if (!data) return;
    const type = typeof data.type === 'string' ? data.type : 'notification';
    const d = data.data;
    let text;
    if (d && typeof d === 'object' && typeof d.message === 'string') text = d.message;
    else text = asText(d);
    addFeed({
      kind: 'notice',
      level: type === 'system' ? 'system' : 'info',
      title: type === 'system' ? 'System' : truncate(type, 60),
      text: truncate(text || '(no details)', 1000),
      slug: d && typeof d === 'object' && typeof d.eventSlug === 'string' ? d.eventSlug : '',
      ts: tsOf(data),
    });
  }

  // ---------------------------------------------------------------- feed

  function icon(name) {
    const tpl = document.getElementById('icon-' + name);
    return tpl ? tpl.content.firstElementChild.cloneNode(true) : document.createTextNode('•');
  }

  function addFeed(item) {
    const feed = $('feed');
    // A burst of likes on one photo is one line that counts up, not a flood that hides comments.
    if (item.kind === 'like' && item.photo) {
      const top = feed.firstElementChild;
      if (top && top.dataset.kind === 'like' && top.dataset.key === item.slug + '\u0000' + item.photo
        && item.ts - Number(top.dataset.ts) < 120000) {
        setText(top.querySelector('.feed-text'), item.text);
        const time = top.querySelector('.feed-time');
        time.setAttribute('datetime', new Date(item.ts).toISOString());
        setText(time, clockTime(item.ts));
        top.dataset.ts = String(item.ts);
        top.classList.remove('flash');
        void top.offsetWidth;
        top.classList.add('flash');
        setTimeout(() => top.classList.remove('flash'), 1500);
        return;
      }
    }
    const dataset = { kind: item.kind, ts: String(item.ts) };
    if (item.kind === 'like' && item.photo) dataset.key = item.slug + '\u0000' + item.photo;
    const li = h('li', { class: 'feed-item feed-' + item.kind + (item.level ? ' feed-' + item.level : ''), dataset },
      h('span', { class: 'feed-icon', 'aria-hidden': 'true' }, icon(item.level === 'system' || item.level === 'warn' ? 'system' : item.kind)),
      h('div', { class: 'feed-body' },
        h('div', { class: 'feed-top' },
          h('span', { class: 'feed-title' }, item.title),
          item.slug ? h('span', { class: 'feed-slug' }, item.slug) : null,
          h('time', { class: 'feed-time', datetime: new Date(item.ts).toISOString() }, clockTime(item.ts))),
        h('p', { class: 'feed-text' }, item.text),
        item.photo && item.kind === 'comment' ? h('span', { class: 'feed-photo' }, 'on photo ', h('span', { class: 'mono' }, truncate(item.photo, 80))) : null));
    feed.insertBefore(li, feed.firstChild);
    while (feed.children.length > FEED_MAX) feed.removeChild(feed.lastChild);
    li.classList.add('flash');
    setTimeout(() => li.classList.remove('flash'), 1500);
    updateFeedEmpty();
    if (!isVisible($('feed-section'))) {
      state.unseenFeed++;
      const badge = $('feed-badge');
      badge.textContent = state.unseenFeed > 99 ? '99+' : String(state.unseenFeed);
      badge.hidden = false;
    }
  }

  function isVisible(el) {
    const r = el.getBoundingClientRect();
    return r.bottom > 0 && r.top < window.innerHeight;
  }

  function updateFeedEmpty() {
    const feed = $('feed');
    const f = state.feedFilter;
    let any = false;
    for (const li of feed.children) {
      if (f === 'all' || li.dataset.kind === f) {
        any = true;
        break;
      }
    }
    $('feed-empty').hidden = any;
  }

  for (const chip of document.querySelectorAll('.chip[data-filter]')) {
    chip.addEventListener('click', () => {
      state.feedFilter = chip.dataset.filter;
      $('feed').dataset.filter = state.feedFilter;
      for (const c of document.querySelectorAll('.chip[data-filter]')) c.setAttribute('aria-pressed', String(c === chip));
      updateFeedEmpty();
    });
  }

  window.addEventListener('scroll', () => {
    if (state.unseenFeed && isVisible($('feed-section'))) {
      state.unseenFeed = 0;
      $('feed-badge').hidden = true;
    }
  }, { passive: true });

  // ---------------------------------------------------------------- rooms

  function lastActivity(slug) {
    const r = state.rooms.get(slug);
    const e = state.events.get(slug);
    return parseTime(r && r.lastAccessAt) || parseTime(e && e.createdAt) || 0;
  }

  function sortedSlugs() {
    const slugs = new Set([...state.events.keys(), ...state.rooms.keys()]);
    return Array.from(slugs).sort((a, b) => {
      const ga = (state.rooms.get(a) || {}).guestCount || 0;
      const gb = (state.rooms.get(b) || {}).guestCount || 0;
      if (ga !== gb) return gb - ga; // the busiest rooms first
      if (ga > 0) return a < b ? -1 : a > b ? 1 : 0;
      const ea = state.events.get(a);
      const eb = state.events.get(b);
      const aa = ea && ea.status === 'ARCHIVED';
      const ab = eb && eb.status === 'ARCHIVED';
      if (aa !== ab) return aa ? 1 : -1;
      const la = lastActivity(a);
      const lb = lastActivity(b);
      if (la !== lb) return lb - la;
      return a < b ? -1 : a > b ? 1 : 0;
    });
  }

  function renderRooms(changedSlug) {
    const container = $('rooms');
    const filter = $('rooms-filter').value.trim().toLowerCase();
    const order = sortedSlugs();
    let shown = 0;
    let liveGuests = 0;
    let liveRooms = 0;
    for (const slug of order) {
      let card = state.cards.get(slug);
      if (!card) {
        card = buildCard(slug);
        state.cards.set(slug, card);
      }
      updateCard(card, slug, slug === changedSlug);
      const r = state.rooms.get(slug);
      if (r && r.guestCount > 0) {
        liveGuests += r.guestCount;
        liveRooms++;
      }
      const e = state.events.get(slug);
      const match = !filter || slug.includes(filter) || (e && typeof e.name === 'string' && e.name.toLowerCase().includes(filter));
      card.root.hidden = !match;
      if (match) shown++;
    }
    // Put the cards in order, moving only those that are out of place (keeps focus and scroll).
    let cursor = container.firstChild;
    for (const slug of order) {
      const el = state.cards.get(slug).root;
      if (el === cursor) cursor = cursor.nextSibling;
      else container.insertBefore(el, cursor);
    }
    for (const [slug, card] of state.cards) {
      if (!state.rooms.has(slug) && !state.events.has(slug)) {
        card.root.remove();
        state.cards.delete(slug);
      }
    }
    setText($('total-live'), fmtNum(liveGuests));
    setText($('total-rooms'), fmtNum(liveRooms));
    setText($('total-events'), fmtNum(order.length));
    const badge = $('rooms-live-badge');
    badge.hidden = liveGuests === 0;
    setText(badge, fmtNum(liveGuests));
    const empty = $('rooms-empty');
    empty.hidden = shown > 0 || !state.loaded;
    setText(empty, order.length === 0 ? 'No events yet. Create one below, or wait for guests to join.' : 'No event matches the filter.');
  }

  $('rooms-filter').addEventListener('input', () => renderRooms());

  function stat(label, cls) {
    const value = h('span', { class: 'stat-num ' + cls, dataset: { field: cls } }, '0');
    return { el: h('div', { class: 'stat' }, value, h('span', { class: 'stat-label' }, label)), value };
  }

  function buildCard(slug) {
    const live = h('span', { class: 'live-num', dataset: { field: 'guestCount' } }, '0');
    const liveLabel = h('span', { class: 'live-label' }, 'guests online');
    const peak = stat('peak', 'peakGuests');
    const total = stat('total guests', 'totalGuests');
    const likes = stat('likes', 'likes');
    const title = h('h3', { class: 'room-name' });
    const slugEl = h('span', { class: 'room-slug mono' }, slug);
    const status = h('span', { class: 'status' });
    const code = h('span', { class: 'code-tag mono', hidden: true });
    const last = h('span', { class: 'room-last' });
    const tops = h('ol', { class: 'top-photos', 'aria-label': 'Most liked photos' });
    const manage = h('button', { type: 'button', class: 'btn btn-ghost btn-small', 'aria-expanded': 'false' }, 'Manage');
    const guestBtn = h('button', { type: 'button', class: 'btn btn-accent btn-small guest-btn' }, 'Guest link');
    const panel = h('div', { class: 'manage', hidden: true });

    const root = h('article', { class: 'room', dataset: { slug } },
      h('div', { class: 'room-head' },
        h('div', { class: 'room-titles' }, title, h('div', { class: 'room-sub' }, slugEl, status, code)),
        h('div', { class: 'live' }, live, liveLabel)),
      h('div', { class: 'stats' }, peak.el, total.el, likes.el),
      h('div', { class: 'top-wrap' }, h('span', { class: 'top-label' }, 'Top photos'), tops),
      h('div', { class: 'room-foot' }, last, h('div', { class: 'room-actions' }, manage, guestBtn)),
      panel);

    const card = { root, live, liveLabel, peak: peak.value, total: total.value, likes: likes.value, title, status, code, last, tops, manage, guestBtn, panel, panelBuilt: false, prev: {} };

    manage.addEventListener('click', () => {
      const open = panel.hidden;
      panel.hidden = !open;
      manage.setAttribute('aria-expanded', String(open));
      setText(manage, open ? 'Done' : 'Manage');
      if (open) {
        state.open.add(slug);
        buildPanel(card, slug);
      } else state.open.delete(slug);
    });
    guestBtn.addEventListener('click', () => issueGuestSession(slug, guestBtn));
    return card;
  }

  function bump(el) {
    el.classList.remove('bump');
    void el.offsetWidth; // restart the animation
    el.classList.add('bump');
  }

  function updateCard(card, slug, changed) {
    const r = state.rooms.get(slug) || { guestCount: 0, peakGuests: 0, totalGuests: 0, likes: 0, topPhotos: [] };
    const e = state.events.get(slug);
    const fields = [['live', r.guestCount], ['peak', r.peakGuests], ['total', r.totalGuests], ['likes', r.likes]];
    for (const [key, value] of fields) {
      const v = num(value, 0);
      if (card.prev[key] !== undefined && card.prev[key] !== v && changed) bump(card[key]);
      card.prev[key] = v;
      setText(card[key], fmtNum(v));
    }
    setText(card.liveLabel, r.guestCount === 1 ? 'guest online' : 'guests online');
    card.root.classList.toggle('is-live', r.guestCount > 0);
    setText(card.title, e && e.name ? e.name : slug);
    card.root.classList.toggle('has-name', Boolean(e && e.name));
    if (e) {
      const st = STATUSES.includes(e.status) ? e.status : 'UNKNOWN';
      setText(card.status, STATUS_LABEL[st] || asText(e.status));
      card.status.dataset.status = st;
      card.root.dataset.status = st;
    } else {
      setText(card.status, 'Not registered');
      card.status.dataset.status = 'NONE';
      card.root.dataset.status = 'NONE';
    }
    const archived = Boolean(e && e.status === 'ARCHIVED');
    card.guestBtn.disabled = archived;
    card.guestBtn.title = archived ? 'Archived events refuse guests: set the status to Active first' : 'Issue a guest session: link and QR code';
    if (e && e.accessCode) {
      setText(card.code, 'code ' + e.accessCode);
      card.code.hidden = false;
    } else card.code.hidden = true;
    const lastMs = parseTime(r.lastAccessAt);
    card.last.dataset.ms = lastMs === null ? '' : String(lastMs);
    setText(card.last, lastMs === null ? 'No guest activity yet' : 'Last activity ' + relTime(lastMs));

    const tops = Array.isArray(r.topPhotos) ? r.topPhotos.slice(0, 5) : [];
    const sig = JSON.stringify(tops.map((p) => [photoIdOf(p), p && p.likeCount]));
    if (card.topsSig !== sig) {
      card.topsSig = sig;
      clear(card.tops);
      if (tops.length === 0) {
        card.tops.appendChild(h('li', { class: 'top-none' }, r.likes > 0 ? 'Shown after the next like' : 'No likes yet'));
      }
      for (const p of tops) {
        card.tops.appendChild(h('li', { class: 'top-photo' },
          h('span', { class: 'top-id mono', title: photoIdOf(p) }, truncate(photoIdOf(p), 40)),
          h('span', { class: 'top-count' }, '♥ ' + fmtNum(num(p && p.likeCount, 0)))));
      }
    }
    if (card.panelBuilt) syncPanel(card, slug);
  }

  setInterval(() => {
    for (const card of state.cards.values()) {
      const ms = card.last.dataset.ms;
      if (ms) setText(card.last, 'Last activity ' + relTime(Number(ms)));
    }
  }, 15000);

  // ---------------------------------------------------------------- manage panel

  function randomCode() {
    const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'; // no 0/O or 1/I: easy to read aloud
    const bytes = new Uint8Array(6);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
  }

  function buildPanel(card, slug) {
    if (card.panelBuilt) {
      syncPanel(card, slug);
      return;
    }
    card.panelBuilt = true;
    const panel = card.panel;
    clear(panel);

    const register = h('div', { class: 'manage-register' },
      h('p', { class: 'muted' }, 'This room has no event record (guests joined with a session the web app issued). Register it to set a status and an access code.'),
      h('button', { type: 'button', class: 'btn btn-primary' }, 'Register event'));
    register.querySelector('button').addEventListener('click', async (ev) => {
      const btn = ev.currentTarget;
      btn.disabled = true;
      try {
        const created = await api('POST', '/api/admin/events', { slug });
        if (created && created.slug) state.events.set(created.slug, created);
        else await refresh(true);
        toast('Event registered', 'ok');
        renderRooms();
      } catch (e) {
        toast(e.message, 'error');
      } finally {
        btn.disabled = false;
      }
    });

    const statusButtons = STATUSES.map((s) => h('button', { type: 'button', class: 'seg-btn', dataset: { status: s }, 'aria-pressed': 'false' }, STATUS_LABEL[s]));
    const seg = h('div', { class: 'seg', role: 'group', 'aria-label': 'Status' }, statusButtons);
    for (const b of statusButtons) {
      b.addEventListener('click', async () => {
        const status = b.dataset.status;
        const e = state.events.get(slug);
        if (!e || e.status === status) return;
        if (status === 'ARCHIVED' && !confirm('Archive "' + (e.name || slug) + '"? Guests can no longer join it.')) return;
        await patchEvent(slug, { status }, 'Status: ' + STATUS_LABEL[status], seg);
      });
    }

    const nameInput = h('input', { class: 'name-input', maxlength: '200', autocomplete: 'off', 'aria-label': 'Event name' });
    const nameSave = h('button', { type: 'button', class: 'btn btn-ghost btn-small' }, 'Save');
    nameSave.addEventListener('click', async () => {
      const name = nameInput.value.trim();
      await patchEvent(slug, { name: name || null }, name ? 'Name saved' : 'Name cleared', nameSave);
    });

    const codeInput = h('input', { class: 'code-input mono', maxlength: '6', autocomplete: 'off', autocapitalize: 'characters', spellcheck: 'false', placeholder: 'none', 'aria-label': 'Access code' });
    codeInput.addEventListener('input', () => {
      const v = codeInput.value.toUpperCase().replace(/[^A-Z0-9]/g, '').slice(0, 6);
      if (v !== codeInput.value) codeInput.value = v;
    });
    const codeSave = h('button', { type: 'button', class: 'btn btn-ghost btn-small' }, 'Save');
    const codeGen = h('button', { type: 'button', class: 'btn btn-ghost btn-small' }, 'Suggest a code');
    const codeClear = h('button', { type: 'button', class: 'btn btn-ghost btn-small' }, 'Remove code');
    codeSave.addEventListener('click', async () => {
      const v = codeInput.value.trim().toUpperCase();
      if (v === '') {
        await patchEvent(slug, { accessCode: null }, 'Access code removed', codeSave);
        return;
      }
      if (!CODE_RE.test(v)) {
        toast('An access code is 6 letters or digits', 'error');
        codeInput.focus();
        return;
      }
      await patchEvent(slug, { accessCode: v }, 'Access code saved', codeSave);
    });
    codeGen.addEventListener('click', () => {
      codeInput.value = randomCode();
      codeInput.focus();
    });
    codeClear.addEventListener('click', () => patchEvent(slug, { accessCode: null }, 'Access code removed', codeClear));

    const editor = h('div', { class: 'manage-edit' },
      h('div', { class: 'manage-row' }, h('span', { class: 'manage-label' }, 'Status'), seg),
      h('div', { class: 'manage-row' }, h('span', { class: 'manage-label' }, 'Name'), h('div', { class: 'inline' }, nameInput, nameSave)),
      h('div', { class: 'manage-row' }, h('span', { class: 'manage-label' }, 'Access code'),
        h('div', { class: 'inline' }, codeInput, codeSave), h('div', { class: 'inline' }, codeGen, codeClear)),
      h('p', { class: 'muted small' }, 'Guests without a link can enter the access code in the gallery. Archived events refuse new guests.'));

    append(panel, [register, editor]);
    card.panelParts = { register, editor, statusButtons, nameInput, codeInput };
    syncPanel(card, slug, true);
  }

  function syncPanel(card, slug, initial) {
    const p = card.panelParts;
    if (!p) return;
    const e = state.events.get(slug);
    p.register.hidden = Boolean(e);
    p.editor.hidden = !e;
    if (!e) return;
    for (const b of p.statusButtons) {
      const on = b.dataset.status === e.status;
      b.setAttribute('aria-pressed', String(on));
      b.classList.toggle('on', on);
    }
    // Do not overwrite what the user is typing.
    if (initial || document.activeElement !== p.nameInput) p.nameInput.value = e.name || '';
    if (initial || document.activeElement !== p.codeInput) p.codeInput.value = e.accessCode || '';
  }

  async function patchEvent(slug, changes, okMessage, busyEl) {
    if (busyEl) busyEl.setAttribute('aria-busy', 'true');
    try {
      const updated = await api('PATCH', '/api/admin/events/' + encodeURIComponent(slug), changes);
      const prev = state.events.get(slug) || { slug };
      state.events.set(slug, updated && updated.slug ? updated : Object.assign({}, prev, changes));
      const card = state.cards.get(slug);
      if (card && card.panelParts) syncPanel(card, slug, true);
      renderRooms();
      toast(okMessage, 'ok');
      return true;
    } catch (e) {
      toast(e.message, 'error');
      return false;
    } finally {
      if (busyEl) busyEl.removeAttribute('aria-busy');
    }
  }

  // ---------------------------------------------------------------- create event

  let slugTouched = false;
  function slugify(s) {
    return s.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
      .replace(/&/g, ' and ').replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 100);
  }
  $('create-name').addEventListener('input', () => {
    if (!slugTouched) $('create-slug').value = slugify($('create-name').value);
  });
  $('create-slug').addEventListener('input', () => {
    slugTouched = $('create-slug').value !== '';
    const v = $('create-slug').value.toLowerCase().replace(/[^a-z0-9-]/g, '-');
    if (v !== $('create-slug').value) $('create-slug').value = v;
  });
  $('create-code').addEventListener('input', () => {
    const el = $('create-code');
    const v = el.value.toUpperCase().replace(/[^A-Z0-9]/g, '').slice(0, 6);
    if (v !== el.value) el.value = v;
  });

  $('jump-create').addEventListener('click', () => {
    $('create-details').open = true;
  });
  $('create-details').addEventListener('toggle', () => {
    if ($('create-details').open && !$('create-name').value) setTimeout(() => $('create-name').focus({ preventScroll: true }), 0);
  });

  $('create-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const err = $('create-error');
    err.hidden = true;
    const slug = $('create-slug').value.trim().toLowerCase();
    const name = $('create-name').value.trim();
    const status = $('create-status').value;
    const code = $('create-code').value.trim().toUpperCase();
    const fail = (msg, field) => {
      err.textContent = msg;
      err.hidden = false;
      if (field) $(field).focus();
    };
    if (!SLUG_RE.test(slug)) return fail('The slug is 1–100 characters: a–z, 0–9 and "-".', 'create-slug');
    if (code && !CODE_RE.test(code)) return fail('An access code is exactly 6 letters or digits.', 'create-code');
    const body = { slug, status };
    if (name) body.name = name;
    if (code) body.accessCode = code;
    const btn = $('create-submit');
    btn.disabled = true;
    try {
      const created = await api('POST', '/api/admin/events', body);
      state.events.set(slug, created && created.slug ? created : Object.assign({ createdAt: new Date().toISOString(), accessCode: code || null, name: name || null }, body));
      renderRooms(slug);
      $('create-form').reset();
      slugTouched = false;
      $('create-details').open = false;
      toast('Event "' + truncate(name || slug, 60) + '" created', 'ok');
      const card = state.cards.get(slug);
      if (card) {
        card.root.classList.add('flash');
        setTimeout(() => card.root.classList.remove('flash'), 2000);
        if (!isVisible(card.root)) card.root.scrollIntoView({ behavior: 'smooth', block: 'center' });
      }
    } catch (e) {
      if (e.status === 409) fail('An event with the slug "' + slug + '" already exists.', 'create-slug');
      else fail(e.message);
    } finally {
      btn.disabled = false;
    }
  });

  // ---------------------------------------------------------------- guest session + QR

  function isLocalHost(hostname) {
    return hostname === 'localhost' || hostname === '::1' || hostname === '[::1]' || /^127\./.test(hostname) || hostname.endsWith('.localhost');
  }

  /** The gallery's address as last entered on this server ('' until one is). */
  function galleryBase() {
    try {
      return localStorage.getItem(BASE_KEY) || '';
    } catch (e) {
      return '';
    }
  }

  /** '' for nothing entered, null for something that is not a web address. */
  function normalizeBase(raw) {
    const v = String(raw || '').trim();
    if (!v) return '';
    try {
      const u = new URL(/^[a-z][a-z0-9+.-]*:/i.test(v) ? v : location.protocol + '//' + v);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
      // The browser's parser takes nearly anything as a host name (spaces included).
      if (!/^(\[[0-9a-f:.]+\]|[a-z0-9-]+(\.[a-z0-9-]+)*)$/i.test(u.hostname)) return null;
      return (u.origin + u.pathname).replace(/\/+$/, '');
    } catch (e) {
      return null;
    }
  }

  function guestLink(base, slug, id) {
    return base + '/?event=' + encodeURIComponent(slug) + '&guestSessionId=' + encodeURIComponent(id);
  }

  let currentGuest = null;

  /** No link and no QR code until the gallery's address is known: this server does not serve
   *  the gallery, so a link to it would land guests on nothing. */
  function showNoLink(text) {
    $('guest-link').value = '';
    $('guest-link').placeholder = 'Enter the gallery address below';
    $('guest-qr').hidden = true;
    $('guest-copy').disabled = true;
    $('guest-download').hidden = true;
    const hint = $('gallery-base-hint');
    hint.textContent = text;
    hint.hidden = false;
  }

  function renderGuest() {
    if (!currentGuest) return;
    const raw = $('gallery-base').value;
    const base = normalizeBase(raw);
    if (base === '') {
      showNoLink('Enter the address of the gallery web app your guests open (for example gallery.example-studio.com, or 192.168.1.10:3000 at a venue). This server carries the live updates but does not serve the gallery.');
      return;
    }
    if (base === null) {
      showNoLink('That is not a web address: enter the gallery\u2019s, such as gallery.example-studio.com.');
      return;
    }
    const hint = $('gallery-base-hint');
    const link = guestLink(base, currentGuest.slug, currentGuest.id);
    $('guest-link').value = link;
    $('guest-copy').disabled = false;
    let hintText = '';
    try {
      const host = new URL(base).hostname;
      if (isLocalHost(host)) hintText = 'Guests\u2019 phones cannot open "localhost": enter the address they reach the gallery at (for example the venue Wi-Fi IP).';
      else if (new URL(base).origin === location.origin) hintText = 'This is the address of the live server, not of the gallery: guests need the gallery web app\u2019s address.';
    } catch (e) { /* ignore */ }
    hint.textContent = hintText;
    hint.hidden = !hintText;
    const canvas = $('guest-qr');
    try {
      const qr = window.HafiQR.encode(link, { ecl: 'M' });
      window.HafiQR.drawCanvas(canvas, qr, { pixels: 360, quiet: 4 });
      canvas.dataset.text = link;
      canvas.hidden = false;
      $('guest-download').hidden = false;
      $('guest-download').href = canvas.toDataURL('image/png');
      $('guest-download').setAttribute('download', 'guest-qr-' + currentGuest.slug + '.png');
    } catch (e) {
      canvas.hidden = true;
      $('guest-download').hidden = true;
      hint.textContent = 'The link is too long for a QR code: shorten the gallery address.';
      hint.hidden = false;
    }
  }

  $('gallery-base').addEventListener('input', () => {
    const base = normalizeBase($('gallery-base').value);
    try {
      if (base) localStorage.setItem(BASE_KEY, base);
      else if (base === '') localStorage.removeItem(BASE_KEY);
    } catch (e) { /* ignore */ }
    renderGuest();
  });

  async function issueGuestSession(slug, btn) {
    btn.disabled = true;
    const label = btn.textContent;
    btn.textContent = 'Issuing…';
    try {
      const s = await api('POST', '/api/admin/guest-sessions', { eventSlug: slug });
      if (!s || typeof s.guestSessionId !== 'string') throw new ApiError(500, 'Unexpected answer from the server');
      currentGuest = { slug: s.eventSlug || slug, id: s.guestSessionId, expiresAt: s.expiresAt };
      setText($('guest-event'), (state.events.get(slug) || {}).name || slug);
      $('gallery-base').value = galleryBase();
      const exp = parseTime(s.expiresAt);
      setText($('guest-meta'), 'Session ' + s.guestSessionId + (exp ? ' · valid until ' + new Date(exp).toLocaleString() : ''));
      renderGuest();
      const dlg = $('guest-dialog');
      if (typeof dlg.showModal === 'function') {
        if (!dlg.open) dlg.showModal();
      } else dlg.setAttribute('open', '');
      if (!state.events.has(slug)) refresh(true); // the server registers unknown events
    } catch (e) {
      toast(e.message, 'error');
    } finally {
      btn.disabled = false;
      btn.textContent = label;
    }
  }

  $('guest-copy').addEventListener('click', async () => {
    const input = $('guest-link');
    try {
      await navigator.clipboard.writeText(input.value);
      toast('Link copied', 'ok');
    } catch (e) {
      input.focus();
      input.select();
      try {
        document.execCommand('copy');
        toast('Link copied', 'ok');
      } catch (e2) {
        toast('Select the link and copy it', 'error');
      }
    }
  });

  $('guest-dialog').addEventListener('click', (ev) => {
    // A tap on the backdrop closes the dialog.
    if (ev.target === $('guest-dialog')) $('guest-dialog').close();
  });

  // ---------------------------------------------------------------- start

  const saved = loadSession();
  if (saved) startSession(saved);
  else {
    dropSession();
    showLogin();
  }
})();
