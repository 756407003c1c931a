// Where the admin page's files are, and which content type each must be served with: every file
// of static/admin/ is listed (read from the directory, so a new file is checked without editing
// the tests), keyed by name, with a pattern its Content-Type must match.

import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, '..', '..', '..');
export const STATIC_DIR = join(REPO, 'static', 'admin');
export const TARGET = join(REPO, 'target');

const TYPE_OF_EXTENSION = { html: 'text/html', js: 'javascript', css: 'text/css' };

export const STATIC_FILES = Object.fromEntries(readdirSync(STATIC_DIR).sort().map((name) => {
  const type = TYPE_OF_EXTENSION[name.split('.').pop()];
  if (!type) throw new Error(`static/admin/${name}: no content type is known for this extension`);
  return [name, type];
}));

let moduleDir = null;

/**
 * Imports a script of the page into Node. The scripts are ES modules with no package.json beside
 * them, which only newer Node versions would detect by their syntax; a copy of them, next to a
 * package.json that says "module", loads on any Node the tests run on.
 */
export function importStatic(name) {
  if (!moduleDir) {
    moduleDir = mkdtempSync(join(tmpdir(), 'hafi-admin-modules-'));
    process.on('exit', () => rmSync(moduleDir, { recursive: true, force: true }));
    writeFileSync(join(moduleDir, 'package.json'), '{"type": "module"}\n');
    for (const file of Object.keys(STATIC_FILES).filter((f) => f.endsWith('.js'))) {
      copyFileSync(join(STATIC_DIR, file), join(moduleDir, file));
    }
  }
  return import(pathToFileURL(join(moduleDir, name)).href);
}
