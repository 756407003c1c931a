// The page's QR encoder on its own, in Node: every code it makes reads back with jsQR, and the
// error correction words match the standard's worked example.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import jsQR from 'jsqr';
import { importStatic } from './support/files.mjs';

const QR = await importStatic('qr.js');
const { reedSolomon } = QR;

test('qr.js: every code it makes for versions 1-15 (L and M) reads back with jsQR', () => {
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
  assert.deepEqual(reedSolomon([32, 91, 11, 120, 209, 114, 220, 77, 67, 64, 236, 17, 236, 17, 236, 17], 10),
    [196, 35, 39, 119, 235, 215, 231, 226, 93, 23]);
});
