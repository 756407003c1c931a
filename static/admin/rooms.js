/*
 * hafi-realtime admin page: the room cards (one per event or live room), their order, the
 * totals above them and the filter box.
 *
 * Cards are made once per slug and then updated in place, so that focus, scroll and an open
 * manage panel survive the many updates a busy event sends.
 */

import {
  $, asText, clear, fmtNum, h, num, parseTime, photoIdOf, relTime, setText, state, STATUS_LABEL,
  STATUSES, truncate
} from './page.js';
import { buildPanel, syncPanel } from './manage.js';
import { issueGuestSession } from './guest.js';

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

export function renderRooms(changedSlug) {
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
