/*
 * hafi-realtime admin page: what the server pushes over the socket (room counts, likes,
 * comments, notifications), applied to the room records and written to the live feed, with the
 * feed's filter chips and the unseen-items badge shown while it is scrolled out of view.
 *
 * Every field is checked before use: comments and notification payloads were typed by guests or
 * by the web app.
 */

import {
  $, asText, clockTime, fmtNum, h, isVisible, num, parseTime, photoIdOf, setText, state, truncate
} from './page.js';
import { renderRooms } from './rooms.js';

// ---------------------------------------------------------------- socket events

function roomOf(slug) {
  let r = state.rooms.get(slug);
  if (!r) {
    r = { slug, guestCount: 0, peakGuests: 0, totalGuests: 0, likes: 0, topPhotos: [], lastAccessAt: null, inMemory: false };
    state.rooms.set(slug, r);
  }
  return r;
}

export function onAdminRoom(data) {
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

function tsOf(d) {
  const t = d && parseTime(d.timestamp);
  return t === null || t === undefined ? Date.now() : t;
}

export function onAdminLike(data) {
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

export function onComment(data) {
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

export function onNotification(data) {
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

// ---------------------------------------------------------------- the feed

const FEED_MAX = 300;

function icon(name) {
  const tpl = document.getElementById('icon-' + name);
  return tpl ? tpl.content.firstElementChild.cloneNode(true) : document.createTextNode('•');
}

export function addFeed(item) {
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

export function updateFeedEmpty() {
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
