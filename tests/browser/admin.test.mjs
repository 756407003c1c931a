// Browser tests of the admin page (SPEC §9): one server and one signed-in page, taken through
// the page's features in order, a test each; after a failure the later ones are skipped.
//
// Runs the real server binary ($HAFI_BIN) and drives Debian's Chromium (/usr/bin/chromium) with
// playwright-core; never downloads a browser. A guest is played by a raw Engine.IO/Socket.IO
// websocket (npm `ws`). Screenshots go to <repo>/target/admin-page*.png.
//
//   cd tests/browser && npm ci && HAFI_BIN=../../target/debug/hafi-realtime npm test
//
// HAFI_ADMIN_FROM_DISK=1 (for editing the page without rebuilding the binary) serves
// static/admin/ from disk to the browser instead.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsQR from 'jsqr';
import { STATIC_DIR, STATIC_FILES, TARGET } from './support/files.mjs';
import { addAdmin, apiCall, mintToken, requireBinary, startServer } from './support/server.mjs';
import { RawGuest } from './support/guest.mjs';
import { launchChromium, login, recordOutsideRequests, roomSel, serveFromDisk, sleep, waitText } from './support/browser.mjs';

const XSS_COMMENT = '<img src=x onerror="window.__xss=1">';
const XSS_STRING_COMMENT = '<script>window.__xss=2</script><b>bold?</b>';

const fromDisk = process.env.HAFI_ADMIN_FROM_DISK === '1';
const secret = randomBytes(36).toString('base64url'); // 48 characters

let tmp;
let bin;
let dataDir;
let server;
let base;
let host;
let wsUrl;
let adminToken;
let browser;
let page;
const outside = [];
const pageErrors = [];

// What the steps hand on to each other.
let other; // an event made by the web app before the page opened
let slug; // the event made through the page
let gs; // a guest session of that event, from the API
let guest; // a guest in that event's room

before(async () => {
  mkdirSync(TARGET, { recursive: true });
  bin = requireBinary();
  tmp = mkdtempSync(join(tmpdir(), 'hafi-admin-page-'));
  dataDir = join(tmp, 'data');
  addAdmin(bin, dataDir, secret);

  server = await startServer(bin, dataDir, secret, 0);
  base = server.url;
  host = new URL(base).host;
  wsUrl = `ws://${host}/socket.io/?EIO=4&transport=websocket`;
  adminToken = mintToken(secret, { user_id: 'test-admin', role: 'ADMIN' });

  browser = await launchChromium(fromDisk);
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, deviceScaleFactor: 1 });
  recordOutsideRequests(context, host, outside);
  if (fromDisk) await serveFromDisk(context);
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  page.on('dialog', (d) => d.accept());
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop().catch(() => {});
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

let failed = false;

/** A test that needs the ones before it: skipped after a failure, which it reports with the
 *  server's output, the page's errors and a screenshot. */
function step(name, fn) {
  test(name, async (t) => {
    if (failed) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      if (page) await page.screenshot({ path: join(TARGET, 'admin-page-failure.png'), fullPage: true }).catch(() => {});
      e.message += `\n--- server output ---\n${server ? server.output() : ''}\n--- page errors ---\n${pageErrors.join('\n')}`;
      throw e;
    }
  });
}

step('every file of static/admin is served, with its content type', async (t) => {
  t.diagnostic(`server at ${base}`);
  for (const [name, type] of Object.entries(STATIC_FILES)) {
    const path = name === 'index.html' ? '/admin/' : `/admin/${name}`;
    const res = await fetch(base + path);
    assert.equal(res.status, 200, `GET ${path}`);
    assert.match(res.headers.get('content-type') || '', new RegExp(type), `content type of ${path}`);
    const body = await res.text();
    if (!fromDisk) {
      assert.ok(body === readFileSync(join(STATIC_DIR, name), 'utf8'),
        `${path} is not static/admin/${name} (rebuild the binary, or set HAFI_ADMIN_FROM_DISK=1)`);
    }
  }
});

step('login: a wrong password is refused on the page, the right one opens the app', async () => {
  // Another event, made by the web app before the page opens: the page lists it too.
  other = `class-of-2026-${randomBytes(3).toString('hex')}`;
  const made = await apiCall(base, adminToken, 'POST', '/api/admin/events', { slug: other, name: 'Class of 2026 Graduation', status: 'DRAFT' });
  assert.equal(made.status, 201, made.text);

  await login(page, base, 'not-the-password');
  await page.waitForSelector('#login-error', { state: 'visible' });
  assert.match(await page.textContent('#login-error'), /wrong username or password/i);
  assert.equal(await page.isVisible('#app-view'), false);

  await login(page, base);
  await page.waitForSelector('#app-view', { state: 'visible' });
  await page.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 });
  await page.waitForSelector(`${roomSel(other)} .status[data-status="DRAFT"]`);
  const stored = await page.evaluate(() => sessionStorage.getItem('hafi.admin.session'));
  assert.ok(stored && JSON.parse(stored).token, 'token kept in sessionStorage');
});

step('create an event through the page; a second one with the same slug is refused', async () => {
  slug = `garden-wedding-${randomBytes(3).toString('hex')}`;
  await page.click('#create-details > summary');
  await page.fill('#create-name', 'Garden Wedding <Anna & Ben>');
  await page.fill('#create-slug', slug);
  await page.fill('#create-code', 'ab12cd');
  await page.click('#create-submit');
  await page.waitForSelector(roomSel(slug), { timeout: 8000 });
  await waitText(page, `${roomSel(slug)} .room-name`, 'Garden Wedding <Anna & Ben>');
  const ev = await apiCall(base, adminToken, 'GET', `/api/admin/events/${slug}`);
  assert.equal(ev.status, 200, ev.text);
  assert.equal(ev.json.status, 'ACTIVE');
  assert.equal(ev.json.accessCode, 'AB12CD');
  assert.equal(ev.json.name, 'Garden Wedding <Anna & Ben>');

  // A second create with the same slug shows the conflict.
  if (!(await page.evaluate(() => document.getElementById('create-details').open))) await page.click('#create-details > summary');
  await page.fill('#create-slug', slug);
  await page.click('#create-submit');
  await page.waitForSelector('#create-error', { state: 'visible' });
  assert.match(await page.textContent('#create-error'), /already exists/);
  await page.fill('#create-slug', '');
  await page.click('#create-details > summary'); // fold the form away again
});

step('a guest joins and likes a photo: live count, feed, likes and top photos', async () => {
  // ---- a guest joins: the room shows one live guest.
  gs = await apiCall(base, adminToken, 'POST', '/api/admin/guest-sessions', { eventSlug: slug });
  assert.equal(gs.status, 201, gs.text);
  guest = await new RawGuest(wsUrl, { guestSessionId: gs.json.guestSessionId, eventSlug: slug }).open();
  guest.emit('event:join', slug);
  await guest.waitFor('event:snapshot');
  await waitText(page, roomSel(slug, 'guestCount'), '1');
  await page.waitForSelector(`${roomSel(slug)}.is-live`);
  await waitText(page, '#total-live', '1');

  // ---- a like arrives: feed item, likes count, top photo.
  guest.emit('photo:like', { eventSlug: slug, photo_id: 'IMG_0042' });
  await guest.waitFor('photo:like', (d) => d.photo_id === 'IMG_0042');
  await page.waitForFunction((s) => [...document.querySelectorAll('#feed .feed-like')]
    .some((li) => li.textContent.includes('IMG_0042') && li.textContent.includes(s)), slug, { timeout: 8000 });
  await waitText(page, roomSel(slug, 'likes'), '1');
  await page.waitForFunction((sel) => {
    const el = document.querySelector(sel);
    return el && /IMG_0042/.test(el.textContent) && /♥ 1/.test(el.textContent);
  }, `${roomSel(slug)} .top-photos`, { timeout: 8000 });
});

step('comments and notifications reach the feed, as inert text', async () => {
  // ---- comments carrying HTML arrive as literal text and run nothing.
  guest.emit('photo:comment', { eventSlug: slug, photo_id: 'IMG_0042', comment: { message: XSS_COMMENT, guest_name: '<b>Mallory</b>' } });
  guest.emit('photo:comment', { eventSlug: slug, photo_id: 'IMG_0042', comment: XSS_STRING_COMMENT });
  await page.waitForFunction((want) => [...document.querySelectorAll('#feed .feed-comment .feed-text')]
    .some((p) => p.textContent === want), XSS_COMMENT, { timeout: 8000 });
  await page.waitForFunction((want) => [...document.querySelectorAll('#feed .feed-comment .feed-text')]
    .some((p) => p.textContent === want), XSS_STRING_COMMENT, { timeout: 8000 });
  await sleep(300); // let an onerror handler run, if an <img> had been made
  const inert = await page.evaluate(() => ({
    xss: typeof window.__xss,
    imgs: document.querySelectorAll('img').length,
    scriptsInFeed: document.querySelectorAll('#feed script, #feed b, #feed img').length,
    author: [...document.querySelectorAll('#feed .feed-comment .feed-title')].map((e) => e.textContent),
  }));
  assert.equal(inert.xss, 'undefined', 'a comment ran script');
  assert.equal(inert.imgs, 0, 'an <img> element was created from a comment');
  assert.equal(inert.scriptsInFeed, 0, 'comment markup became elements');
  assert.ok(inert.author.includes('<b>Mallory</b>'), `guest name shown as text: ${JSON.stringify(inert.author)}`);

  // ---- an admin notification reaches the feed (web app push through /api/emit).
  const note = await apiCall(base, adminToken, 'POST', '/api/emit',
    { event: 'admin:notification', data: { type: 'order', data: { message: 'New print order <#12>' } } });
  assert.equal(note.status, 202, note.text);
  await page.waitForFunction(() => [...document.querySelectorAll('#feed .feed-notice .feed-text')]
    .some((p) => p.textContent === 'New print order <#12>'), null, { timeout: 8000 });

  await page.screenshot({ path: join(TARGET, 'admin-page.png'), fullPage: true });
});

step('the page on a phone: one column, no sideways scrolling', async () => {
  // The same page on a phone, signed in on its own; screenshot.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  recordOutsideRequests(phone, host, outside);
  if (fromDisk) await serveFromDisk(phone);
  const phonePage = await phone.newPage();
  phonePage.on('pageerror', (e) => pageErrors.push(`phone: ${e}`));
  await login(phonePage, base);
  await phonePage.waitForSelector('#conn[data-state="connected"]', { timeout: 10000 });
  await waitText(phonePage, roomSel(slug, 'guestCount'), '1');
  const layout = await phonePage.evaluate(() => {
    const rooms = document.querySelector('#rooms-section').getBoundingClientRect();
    const feed = document.querySelector('#feed-section').getBoundingClientRect();
    return { overflow: document.documentElement.scrollWidth - window.innerWidth, roomsW: rooms.width, feedTop: feed.top, roomsBottom: rooms.bottom };
  });
  assert.ok(layout.overflow <= 0, `phone page scrolls sideways by ${layout.overflow}px`);
  assert.ok(layout.feedTop >= layout.roomsBottom, 'phone layout is a single column');
  await phonePage.screenshot({ path: join(TARGET, 'admin-page-phone.png'), fullPage: false });
  await phone.close();
});

step('manage: status and access code through the page', async () => {
  await page.click(`${roomSel(slug)} .room-actions button:has-text("Manage")`);
  await page.click(`${roomSel(slug)} .seg-btn[data-status="DRAFT"]`);
  await page.waitForSelector(`${roomSel(slug)} .status[data-status="DRAFT"]`, { timeout: 8000 });
  assert.equal((await apiCall(base, adminToken, 'GET', `/api/admin/events/${slug}`)).json.status, 'DRAFT');
  await page.fill(`${roomSel(slug)} .code-input`, 'zz9zz9');
  await page.click(`${roomSel(slug)} .manage-row:has(.code-input) button:has-text("Save")`);
  await waitText(page, `${roomSel(slug)} .code-tag`, 'code ZZ9ZZ9');
  assert.equal((await apiCall(base, adminToken, 'GET', `/api/admin/events/${slug}`)).json.accessCode, 'ZZ9ZZ9');
  await page.click(`${roomSel(slug)} .manage-row:has(.code-input) button:has-text("Remove")`);
  await page.waitForSelector(`${roomSel(slug)} .code-tag`, { state: 'hidden', timeout: 8000 });
  assert.equal((await apiCall(base, adminToken, 'GET', `/api/admin/events/${slug}`)).json.accessCode, null);
  await page.click(`${roomSel(slug)} .seg-btn[data-status="ACTIVE"]`);
  await page.waitForSelector(`${roomSel(slug)} .status[data-status="ACTIVE"]`, { timeout: 8000 });
});

step('guest link and QR code: none until the gallery address is known, then readable and working', async () => {
  // ---- guest session link and QR code (decoded back with jsQR). No link and no QR code until
  // the gallery's address is entered: this server does not serve the gallery.
  await page.click(`${roomSel(slug)} .room-actions button:has-text("Guest link")`);
  await page.waitForSelector('#guest-dialog[open]');
  assert.equal(await page.inputValue('#guest-link'), '');
  assert.ok(await page.isHidden('#guest-qr'), 'a QR code before the gallery address is known');
  assert.ok(await page.isDisabled('#guest-copy'));
  assert.match(await page.textContent('#gallery-base-hint'), /address of the gallery/);
  await page.fill('#gallery-base', 'not a web address at all');
  assert.equal(await page.inputValue('#guest-link'), '');
  await page.fill('#gallery-base', 'gallery.studio.test/events');
  const link = await page.inputValue('#guest-link');
  const m = new RegExp(`^http://gallery\\.studio\\.test/events/\\?event=${slug}&guestSessionId=([A-Za-z0-9_-]+)$`).exec(link);
  assert.ok(m, `guest link: ${link}`);
  assert.ok(!(await page.isDisabled('#guest-copy')));
  assert.equal(await page.evaluate(() => localStorage.getItem('hafi.admin.galleryBase')), 'http://gallery.studio.test/events');
  const qrPixels = await page.evaluate(() => {
    const c = document.getElementById('guest-qr');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
    return { w: c.width, h: c.height, data: Array.from(d.data) };
  });
  const decoded = jsQR(Uint8ClampedArray.from(qrPixels.data), qrPixels.w, qrPixels.h);
  assert.ok(decoded, 'QR code not readable');
  assert.equal(decoded.data, link);
  // The session works: a second guest joins with it.
  const guest2 = await new RawGuest(wsUrl, { guestSessionId: m[1], eventSlug: slug }).open();
  guest2.emit('event:join', slug);
  await guest2.waitFor('event:snapshot');
  await waitText(page, roomSel(slug, 'guestCount'), '2');
  await page.screenshot({ path: join(TARGET, 'admin-page-qr.png') });
  // The address is remembered by this server's page: the next guest link is made at once.
  await page.click('#guest-dialog button[value="close"]');
  await page.click(`${roomSel(slug)} .room-actions button:has-text("Guest link")`);
  await page.waitForSelector('#guest-dialog[open]');
  assert.match(await page.inputValue('#guest-link'), /^http:\/\/gallery\.studio\.test\/events\/\?event=/);
  assert.ok(!(await page.isHidden('#guest-qr')));
  await page.click('#guest-dialog button[value="close"]');
  await guest2.close();
  await waitText(page, roomSel(slug, 'guestCount'), '1');
});

step('a server restart: the page shows it is offline, reconnects, re-joins and catches up', async () => {
  await guest.close();
  await waitText(page, roomSel(slug, 'guestCount'), '0');
  const port = server.port;
  await server.stop();
  await page.waitForSelector('#conn[data-state="offline"]', { timeout: 10000 });
  await page.waitForSelector('#stale-note', { state: 'visible' });
  server = await startServer(bin, dataDir, secret, port);
  await page.waitForSelector('#conn[data-state="connected"]', { timeout: 20000 });
  await page.waitForSelector('#stale-note', { state: 'hidden' });
  const guest3 = await new RawGuest(wsUrl, { guestSessionId: gs.json.guestSessionId, eventSlug: slug }).open();
  guest3.emit('event:join', slug);
  await guest3.waitFor('event:snapshot');
  await waitText(page, roomSel(slug, 'guestCount'), '1');
  guest3.emit('photo:like', { eventSlug: slug, photo_id: 'IMG_0077' });
  await page.waitForFunction(() => [...document.querySelectorAll('#feed .feed-like')]
    .some((li) => li.textContent.includes('IMG_0077')), null, { timeout: 8000 });
  await waitText(page, roomSel(slug, 'likes'), '2');
  await guest3.close();
});

step('signing out forgets the token; the page contacted no other host and logged no error', async () => {
  // ---- signing out forgets the token.
  await page.click('#logout');
  await page.waitForSelector('#login-form', { state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('hafi.admin.session')), null);

  assert.deepEqual(outside, [], `the page contacted other hosts: ${outside.join(', ')}`);
  assert.deepEqual(pageErrors.filter((e) => !/Failed to load resource|WebSocket connection/.test(e)), [], 'page errors');
});
