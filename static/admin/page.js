/*
 * hafi-realtime admin page: the toolkit every other module uses, with no page logic of its own:
 * the shared state object, element helpers, turning values into text, and toasts.
 *
 * The element helpers only ever make elements and text nodes: no HTML is parsed, so text from
 * the server (event names, comments) stays text.
 */

// ---------------------------------------------------------------- what the page knows

export const STATUSES = ['DRAFT', 'ACTIVE', 'ARCHIVED'];
export const STATUS_LABEL = { DRAFT: 'Draft', ACTIVE: 'Active', ARCHIVED: 'Archived' };
export const CODE_RE = /^[A-Z0-9]{6}$/;

export const state = {
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

// ---------------------------------------------------------------- elements (text only)

export const $ = (id) => document.getElementById(id);

/**
 * h('div', {class: 'x', dataset: {slug}, on: {click}}, child, 'text', ...)
 * Strings and numbers become text nodes; attributes are set with setAttribute.
 */
export function h(tag, attrs, ...children) {
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

export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function setText(el, value) {
  const s = String(value);
  if (el.textContent !== s) el.textContent = s;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function isVisible(el) {
  const r = el.getBoundingClientRect();
  return r.bottom > 0 && r.top < window.innerHeight;
}

// ---------------------------------------------------------------- values as text

const numberFmt = new Intl.NumberFormat();
export const fmtNum = (n) => (typeof n === 'number' && isFinite(n) ? numberFmt.format(n) : '0');

export function parseTime(value) {
  if (!value) return null;
  const t = Date.parse(value);
  return isNaN(t) ? null : t;
}

export function relTime(ms) {
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

export function clockTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function truncate(s, max) {
  const str = String(s);
  return str.length > max ? str.slice(0, max - 1) + '…' : str;
}

export function asText(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  try {
    return JSON.stringify(value);
  } catch (e) {
    return '[unreadable]';
  }
}

export function num(v, fallback) {
  return typeof v === 'number' && isFinite(v) ? v : fallback;
}

export function photoIdOf(d) {
  if (!d) return '';
  const id = d.photo_id !== undefined ? d.photo_id : d.photoId;
  return id === undefined || id === null ? '' : String(id);
}

// ---------------------------------------------------------------- toasts

export function toast(message, kind) {
  const el = h('div', { class: 'toast' + (kind ? ' toast-' + kind : '') }, message);
  $('toasts').appendChild(el);
  setTimeout(() => el.classList.add('toast-out'), 3600);
  setTimeout(() => el.remove(), 4000);
}
