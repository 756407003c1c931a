/*
 * hafi-realtime admin page: editing events. A room card's manage panel (status, name, access
 * code, or registering a room that has no event record yet) with the PATCH that saves a change,
 * and the "New event" form, which suggests a slug from the name and checks slug and code as the
 * server will.
 */

import {
  $, append, clear, CODE_RE, h, isVisible, state, STATUS_LABEL, STATUSES, toast, truncate
} from './page.js';
import { api, refresh } from './server.js';
import { renderRooms } from './rooms.js';

// ---------------------------------------------------------------- manage panel

function randomCode() {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'; // no 0/O or 1/I: easy to read aloud
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}

export function buildPanel(card, slug) {
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

export function syncPanel(card, slug, initial) {
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

// ---------------------------------------------------------------- new event form

const SLUG_RE = /^[a-z0-9-]{1,100}$/;

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
