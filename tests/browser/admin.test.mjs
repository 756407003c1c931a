// Browser tests of the admin page (SPEC §9, issue 5).
//
// Runs the real server binary ($HAFI_BIN) and drives Debian's Chromium (/usr/bin/chromium) with
// playwright-core; never downloads a browser. A guest is played by a raw Engine.IO/Socket.IO
// websocket (npm `ws`). Screenshots go to <repo>/target/admin-page*.png.
//
//   cd tests/browser && npm ci && HAFI_BIN=../../target/debug/hafi-realtime npm test

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import vm from 'node:vm';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import jsQR from 'jsqr';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..', '..');
const STATIC_DIR = join(REPO, 'static', 'admin');
const TARGET = join(REPO, 'target');
const STATIC_FILES = {
  'index.html': 'text/html',
  'app.js': 'javascript',
  'style.css': 'text/css',
  'sio.js': 'javascript',
  'qr.js': 'javascript',
};
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];
const XSS_COMMENT = '<img src=x onerror="window.__xss=1">';
const XSS_STRING_COMMENT = '<script>window.__xss=2</script><b>bold?</b>';
const ADMIN_USER = 'alice';
const ADMIN_PASSWORD = 'venue-pass-2026'; // the server wants 8+ characters

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ static files

test('admin page files reference no outside host and never inject HTML', () => {
  const problems = [];
  for (const name of Object.keys(STATIC_FILES)) {
    const path = join(STATIC_DIR, name);
    assert.ok(existsSync(path), `${path} is missing`);
    const text = readFileSync(path, 'utf8');
    assert.ok(text.trim().length > 100, `${name} is (nearly) empty`);
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      const where = `${name}:${i + 1}: ${line.trim().slice(0, 120)}`;
      // Any absolute URL with a scheme that reaches a host.
      if (/\b(?:https?|wss?|ftp):\/\//i.test(line)) problems.push(`absolute URL: ${where}`);
      // Protocol-relative URLs in attributes, CSS and string literals: //host.tld
      if (/(?:src|href|action|poster|srcset|data)\s*=\s*["']?\s*\/\//i.test(line)) problems.push(`protocol-relative attribute: ${where}`);
      if (/url\(\s*["']?\s*\/\//i.test(line)) problems.push(`protocol-relative url(): ${where}`);
      if (/["'`(]\s*\/\/[a-z0-9-]+(?:\.[a-z0-9-]+)+/i.test(line)) problems.push(`protocol-relative host: ${where}`);
      if (/@import/i.test(line)) problems.push(`@import: ${where}`);
      if (/@font-face/i.test(line)) problems.push(`web font: ${where}`);
      if (/\b(?:cdn|googleapis|gstatic|jsdelivr|unpkg|cloudflare)\b/i.test(line)) problems.push(`CDN name: ${where}`);
      if (name.endsWith('.js') && /\b(?:innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment)\b/.test(line)) {
        problems.push(`HTML injection sink: ${where}`);
      }
      if (name.endsWith('.js') && /\beval\s*\(|new\s+Function\s*\(/.test(line)) problems.push(`eval: ${where}`);
    });
    if (name === 'index.html') {
      // Every src/href is relative (or a data: URL): the page loads only from its own server.
      for (const m of text.matchAll(/\b(?:src|href)\s*=\s*"([^"]*)"/gi)) {
        const ref = m[1];
        if (ref.startsWith('#') || ref.startsWith('data:')) continue;
        if (/^[a-z][a-z0-9+.-]*:/i.test(ref) || ref.startsWith('//')) problems.push(`non-relative reference in index.html: ${ref}`);
      }
      assert.doesNotMatch(text, /\son[a-z]+\s*=/i, 'index.html has inline event handlers');
    }
  }
  assert.deepEqual(problems, [], problems.join('\n'));
});

// ------------------------------------------------------------------ qr.js and sio.js on their own

test('qr.js: every code it makes for versions 1-15 (L and M) reads back with jsQR', () => {
  const require = createRequire(import.meta.url);
  const QR = require(join(STATIC_DIR, 'qr.js'));
  const seen = new Set();
  for (const ecl of ['L', 'M']) {
    for (let len = 1; len <= 420; len += 7) {
      let text = 'gallery.local:3001/?event=anna-ben-2026&guestSessionId=guest_';
      while (text.length < len) text += 'Zq9_-é~';
      text = text.slice(0, len);
      let qr;
      try {
        qr = QR.encode(text, { ecl });
      } catch (e) {
        assert.ok(Buffer.byteLength(text) > 300, `${ecl} ${len}: ${e.message}`);
        continue;
      }
      seen.add(`${ecl}${qr.version}`);
      assert.equal(qr.size, qr.version * 4 + 17);
      const scale = 3;
      const quiet = 4;
      const w = (qr.size + quiet * 2) * scale;
      const px = new Uint8ClampedArray(w * w * 4).fill(255);
      for (let y = 0; y < qr.size; y++) {
        for (let x = 0; x < qr.size; x++) {
          if (!qr.modules[y * qr.size + x]) continue;
          for (let dy = 0; dy < scale; dy++) {
            for (let dx = 0; dx < scale; dx++) {
              const i = (((y + quiet) * scale + dy) * w + (x + quiet) * scale + dx) * 4;
              px[i] = px[i + 1] = px[i + 2] = 0;
            }
          }
        }
      }
      const got = jsQR(px, w, w, { inversionAttempts: 'dontInvert' });
      assert.ok(got, `${ecl} version ${qr.version} mask ${qr.mask} (${len} chars) is unreadable`);
      assert.equal(got.data, text, `${ecl} version ${qr.version} mask ${qr.mask}`);
    }
  }
  for (let v = 1; v <= 15; v++) assert.ok(seen.has(`M${v}`) && seen.has(`L${v}`), `version ${v} not exercised`);
  // Reed-Solomon check words of the standard's worked example (1-M "HELLO WORLD" data).
  assert.deepEqual(QR._internal.reedSolomon([32, 91, 11, 120, 209, 114, 220, 77, 67, 64, 236, 17, 236, 17, 236, 17], 10),
    [196, 35, 39, 119, 235, 215, 231, 226, 93, 23]);
});

test('sio.js: Socket.IO packet parsing', () => {
  const sandbox = { window: {}, console, URL, setTimeout, clearTimeout };
  vm.runInNewContext(readFileSync(join(STATIC_DIR, 'sio.js'), 'utf8'), sandbox);
  const parse = sandbox.window.HafiSio.parsePacket;
  const plain = (v) => JSON.parse(JSON.stringify(v));
  assert.deepEqual(plain(parse('0{"sid":"abc"}')), { type: '0', nsp: '/', id: null, data: { sid: 'abc' } });
  assert.deepEqual(plain(parse('4{"message":"Authentication required"}')).data, { message: 'Authentication required' });
  assert.deepEqual(plain(parse('2["admin:room",{"slug":"a","guestCount":3}]')).data, ['admin:room', { slug: 'a', guestCount: 3 }]);
  assert.deepEqual(plain(parse('212["x",1]')), { type: '2', nsp: '/', id: 12, data: ['x', 1] });
  assert.deepEqual(plain(parse('2/admin,["x"]')), { type: '2', nsp: '/admin', id: null, data: ['x'] });
  assert.deepEqual(plain(parse('1')), { type: '1', nsp: '/', id: null });
  assert.equal(parse('2[not json'), null);
});

// ------------------------------------------------------------------ server

const SERVER_ENV_VARS = ['SOCKET_PORT', 'SOCKET_HOST', 'NODE_ENV', 'HAFI_ENV', 'HAFI_CONFIG', 'NEXTAUTH_SECRET',
  'ALLOWED_ORIGINS', 'DATA_DIR', 'TRUSTED_PROXIES', 'SOCKET_GUEST_SESSION_VALIDATION_DISABLED', 'RUST_LOG',
  'LOG_FORMAT', 'MAX_CONNECTIONS', 'MAX_CONNECTIONS_PER_IP', 'METRICS_TOKEN'];

function serverEnv(secret) {
  const env = { ...process.env };
  for (const k of SERVER_ENV_VARS) delete env[k];
  return { ...env, NEXTAUTH_SECRET: secret, RUST_LOG: 'warn', RUST_BACKTRACE: '1' };
}

function requireBinary() {
  const bin = process.env.HAFI_BIN;
  if (!bin) throw new Error('HAFI_BIN is not set: HAFI_BIN=/path/to/target/debug/hafi-realtime npm test');
  if (!existsSync(bin)) throw new Error(`HAFI_BIN=${bin} does not exist (build the server first)`);
  return bin;
}

/** Starts `serve` on the port (0 = any) and resolves once it prints "listening on ...". */
async function startServer(bin, dataDir, secret, port) {
  const child = spawn(bin, ['serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir],
    { env: serverEnv(secret), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (s) => { out = (out + s).slice(-20000); };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', keep);
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`server not ready in 20 s\n${out}`)); }, 20000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      keep(line + '\n');
      const m = /listening on (http:\/\/127\.0\.0\.1:(\d+))/.exec(line);
      if (m && Number(m[2]) > 0) { clearTimeout(timer); resolveUrl(m[1]); }
    });
    exited.then((info) => { clearTimeout(timer); reject(new Error(`server exited (${JSON.stringify(info)})\n${out}`)); });
  });
  return {
    url,
    port: Number(new URL(url).port),
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 8000);
      await exited;
      clearTimeout(killer);
    },
  };
}

function b64url(v) {
  return Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
}

function mintToken(secret, claims, ttlSeconds = 3600) {
  const head = b64url({ alg: 'HS256', typ: 'JWT' });
  const body = b64url({ ...claims, exp: Math.floor(Date.now() / 1000) + ttlSeconds });
  const sig = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

async function apiCall(base, token, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

// ------------------------------------------------------------------ a raw Socket.IO guest

class RawGuest {
  constructor(wsUrl, auth) {
    this.wsUrl = wsUrl;
    this.auth = auth;
    this.events = [];
    this.waiters = [];
  }

  open(timeout = 5000) {
    return new Promise((resolveOpen, reject) => {
      const ws = new WebSocket(this.wsUrl);
      this.ws = ws;
      const timer = setTimeout(() => reject(new Error('guest connect timed out')), timeout);
      ws.on('error', (e) => { clearTimeout(timer); reject(e); });
      ws.on('message', (buf) => {
        const msg = buf.toString();
        if (msg.startsWith('0')) ws.send('40' + JSON.stringify(this.auth));
        else if (msg === '2') ws.send('3');
        else if (msg.startsWith('40')) { clearTimeout(timer); resolveOpen(this); }
        else if (msg.startsWith('44')) { clearTimeout(timer); reject(new Error(`guest refused: ${msg}`)); }
        else if (msg.startsWith('42')) {
          const [name, data] = JSON.parse(msg.slice(2));
          this.events.push({ name, data });
          for (const w of this.waiters.slice()) w();
        }
      });
    });
  }

  emit(name, data) {
    this.ws.send('42' + JSON.stringify(data === undefined ? [name] : [name, data]));
  }

  waitFor(name, pred = () => true, timeout = 5000) {
    return new Promise((resolveWait, reject) => {
      const check = () => {
        const hit = this.events.find((e) => e.name === name && pred(e.data));
        if (hit) {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== check);
          resolveWait(hit.data);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`guest did not get ${name} in ${timeout} ms; got ${JSON.stringify(this.events.map((e) => e.name))}`));
      }, timeout);
      if (!check()) this.waiters.push(check);
    });
  }

  close() {
    return new Promise((r) => {
      if (!this.ws || this.ws.readyState === WebSocket.CLOSED) return r();
      this.ws.once('close', r);
      this.ws.close();
    });
  }
}

// ------------------------------------------------------------------ the browser test

let tmp;
let server;
let browser;
const secret = randomBytes(36).toString('base64url'); // 48 characters

before(async () => {
  mkdirSync(TARGET, { recursive: true });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop().catch(() => {});
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function serveFromDisk(context) {
  await context.route(/\/admin\/([a-z]+\.(?:html|js|css))?(\?.*)?$/, (route) => {
    const m = /\/admin\/([a-z]+\.(?:html|js|css))?/.exec(new URL(route.request().url()).pathname);
    const name = (m && m[1]) || 'index.html';
    if (!STATIC_FILES[name]) return route.continue();
    const type = { html: 'text/html', js: 'text/javascript', css: 'text/css' }[name.split('.').pop()];
    return route.fulfill({ status: 200, contentType: `${type}; charset=utf-8`, body: readFileSync(join(STATIC_DIR, name), 'utf8') });
  });
}

async function login(page, base, password = ADMIN_PASSWORD) {
  await page.goto(base + '/admin/');
  await page.waitForSelector('#login-form', { state: 'visible' });
  await page.fill('#login-username', ADMIN_USER);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
}

function roomSel(slug, field) {
  return `.room[data-slug="${slug}"]` + (field ? ` [data-field="${field}"]` : '');
}

async function waitText(page, selector, expected, timeout = 8000) {
  await page.waitForFunction(([sel, want]) => {
    const el = document.querySelector(sel);
    return el && el.textContent.trim() === want;
  }, [selector, expected], { timeout }).catch(async (e) => {
    const got = await page.evaluate((sel) => {
      const el = document.querySelector(sel);
      return el ? el.textContent : '(no element)';
    }, selector);
    throw new Error(`${selector}: expected "${expected}", got "${got}" (${e.message.split('\n')[0]})`);
  });
}

test('admin page: login, live room, likes, comments rendered inert, events, guest link + QR, reconnect', async (t) => {
  const bin = requireBinary();
  tmp = mkdtempSync(join(tmpdir(), 'hafi-admin-page-'));
  const dataDir = join(tmp, 'data');

  // An admin user, made before the server runs (the data directory is locked while it runs).
  const add = spawnSync(bin, ['admin', 'add', ADMIN_USER, '--password-stdin', '--data-dir', dataDir],
    { input: ADMIN_PASSWORD + '\n', env: serverEnv(secret), encoding: 'utf8', timeout: 30000 });
  assert.equal(add.status, 0, `admin add failed (${add.status}):\n${add.stdout}\n${add.stderr}`);

  server = await startServer(bin, dataDir, secret, 0);
  const base = server.url;
  const host = new URL(base).host;
  const adminToken = mintToken(secret, { user_id: 'test-admin', role: 'ADMIN' });
  t.diagnostic(`server at ${base}`);

  // The five files are served with the right content types. HAFI_ADMIN_FROM_DISK=1 (for editing
  // the page without rebuilding the binary) serves static/admin/ from disk to the browser instead.
  const fromDisk = process.env.HAFI_ADMIN_FROM_DISK === '1';
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

  // Responses fulfilled by the test (from disk) have no address, and Chromium's local network
  // access checks would then refuse the page's websocket to 127.0.0.1.
  const args = fromDisk ? [...CHROMIUM_ARGS, '--disable-features=LocalNetworkAccessChecks'] : CHROMIUM_ARGS;
  // Another event, made by the web app before the page opens: the page lists it too.
  const other = `class-of-2026-${randomBytes(3).toString('hex')}`;
  const made = await apiCall(base, adminToken, 'POST', '/api/admin/events', { slug: other, name: 'Class of 2026 Graduation', status: 'DRAFT' });
  assert.equal(made.status, 201, made.text);

  browser = await chromium.launch({ executablePath: CHROMIUM, args });
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 }, deviceScaleFactor: 1 });
  const outside = [];
  const pageErrors = [];
  context.on('request', (req) => {
    const u = new URL(req.url());
    if (u.protocol !== 'data:' && u.host !== host) outside.push(req.url());
  });
  if (fromDisk) await serveFromDisk(context);
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  page.on('dialog', (d) => d.accept());

  try {
    // ---- login: a wrong password is refused on the page, the right one opens the app.
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

    // ---- create an event through the page.
    const slug = `garden-wedding-${randomBytes(3).toString('hex')}`;
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

    // ---- a guest joins: the room shows one live guest.
    const gs = await apiCall(base, adminToken, 'POST', '/api/admin/guest-sessions', { eventSlug: slug });
    assert.equal(gs.status, 201, gs.text);
    const wsUrl = `ws://${host}/socket.io/?EIO=4&transport=websocket`;
    const guest = await new RawGuest(wsUrl, { guestSessionId: gs.json.guestSessionId, eventSlug: slug }).open();
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

    // ---- the same page on a phone: single column, readable; screenshot.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    phone.on('request', (req) => {
      const u = new URL(req.url());
      if (u.protocol !== 'data:' && u.host !== host) outside.push(req.url());
    });
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

    // ---- manage: status and access code through the page.
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

    // ---- the server restarts: the page shows it is offline, reconnects, re-joins and catches up.
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

    // ---- signing out forgets the token.
    await page.click('#logout');
    await page.waitForSelector('#login-form', { state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('hafi.admin.session')), null);

    assert.deepEqual(outside, [], `the page contacted other hosts: ${outside.join(', ')}`);
    assert.deepEqual(pageErrors.filter((e) => !/Failed to load resource|WebSocket connection/.test(e)), [], 'page errors');
  } catch (e) {
    await page.screenshot({ path: join(TARGET, 'admin-page-failure.png'), fullPage: true }).catch(() => {});
    e.message += `\n--- server output ---\n${server ? server.output() : ''}\n--- page errors ---\n${pageErrors.join('\n')}`;
    throw e;
  }
});
