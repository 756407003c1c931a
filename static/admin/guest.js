/*
 * hafi-realtime admin page: issuing a guest session and showing its link and QR code.
 *
 * The gallery is served elsewhere, so the link is built on the gallery address the studio
 * enters (remembered per server in localStorage); without one there is no link and no code.
 */

import { $, parseTime, setText, state, toast } from './page.js';
import { api, ApiError, refresh } from './server.js';
import * as QR from './qr.js';

const BASE_KEY = 'hafi.admin.galleryBase';

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
    const qr = QR.encode(link, { ecl: 'M' });
    QR.drawCanvas(canvas, qr, { pixels: 360, quiet: 4 });
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

export async function issueGuestSession(slug, btn) {
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
