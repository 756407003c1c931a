/*
 * hafi-realtime admin page: the entry point (index.html loads only this file, as an ES module)
 * and the session: the token (kept in sessionStorage, so it ends with the tab), the switch
 * between the login view and the app view, the login form, and the sign-out that forgets
 * everything the page had loaded.
 *
 * Every piece of text that came from the server (event names, slugs, photo ids, comments,
 * notification data) is put into the page with textContent / createTextNode only: no HTML parsing
 * of data anywhere, so guest-supplied markup stays inert.
 *
 * Modules: page (state, element helpers, formatting, toasts), server (HTTP API, re-reads, the
 * socket), feed (socket events and the feed), rooms (the cards), manage (a card's manage panel
 * and the new event form), guest (guest link and QR code, drawn by qr.js), sio (Socket.IO
 * client). Some import each other (the cards and their panel, the API and sign-out); that is
 * safe because a module's top level only binds listeners and timers, and calls into other
 * modules happen later, from those.
 */

import { $, clear, parseTime, state } from './page.js';
import { api, ApiError, connectSocket, refresh } from './server.js';
import { updateFeedEmpty } from './feed.js';
import './rooms.js';
import './manage.js';
import './guest.js';

// ---------------------------------------------------------------- session

const TOKEN_KEY = 'hafi.admin.session';

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

export function signOut(message) {
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

// ---------------------------------------------------------------- start

const saved = loadSession();
if (saved) startSession(saved);
else {
  dropSession();
  showLogin();
}
