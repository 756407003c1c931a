// The admin page's files as files: nothing in them reaches another host, loads a web font, or
// turns text into HTML (SPEC §9). Every file of static/admin/ is checked.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { STATIC_DIR, STATIC_FILES } from './support/files.mjs';

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
