// Debian's Chromium (/usr/bin/chromium, never a downloaded browser) driven by playwright-core,
// and the steps the admin page tests take in it: sign in, find a room card, wait for a text.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { STATIC_DIR, STATIC_FILES } from './files.mjs';
import { ADMIN_PASSWORD, ADMIN_USER } from './server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function launchChromium(fromDisk) {
  // Responses fulfilled by the test (from disk) have no address, and Chromium's local network
  // access checks would then refuse the page's websocket to 127.0.0.1.
  const args = fromDisk ? [...CHROMIUM_ARGS, '--disable-features=LocalNetworkAccessChecks'] : CHROMIUM_ARGS;
  return chromium.launch({ executablePath: CHROMIUM, args });
}

/** Serves static/admin/ from disk to the browser, for editing the page without a rebuild. */
export async function serveFromDisk(context) {
  await context.route(/\/admin\/([a-z-]+\.(?:html|js|css))?(\?.*)?$/, (route) => {
    const m = /\/admin\/([a-z-]+\.(?:html|js|css))?/.exec(new URL(route.request().url()).pathname);
    const name = (m && m[1]) || 'index.html';
    if (!STATIC_FILES[name]) return route.continue();
    const type = { html: 'text/html', js: 'text/javascript', css: 'text/css' }[name.split('.').pop()];
    return route.fulfill({ status: 200, contentType: `${type}; charset=utf-8`, body: readFileSync(join(STATIC_DIR, name), 'utf8') });
  });
}

/** Records in `outside` every request the context makes to a host other than `host`. */
export function recordOutsideRequests(context, host, outside) {
  context.on('request', (req) => {
    const u = new URL(req.url());
    if (u.protocol !== 'data:' && u.host !== host) outside.push(req.url());
  });
}

export async function login(page, base, password = ADMIN_PASSWORD) {
  await page.goto(base + '/admin/');
  await page.waitForSelector('#login-form', { state: 'visible' });
  await page.fill('#login-username', ADMIN_USER);
  await page.fill('#login-password', password);
  await page.click('#login-submit');
}

export function roomSel(slug, field) {
  return `.room[data-slug="${slug}"]` + (field ? ` [data-field="${field}"]` : '');
}

export async function waitText(page, selector, expected, timeout = 8000) {
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
