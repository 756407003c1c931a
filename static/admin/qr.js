/*
 * hafi-realtime admin page: a small QR code encoder (ISO/IEC 18004), written for this page.
 *
 * Byte mode only (UTF-8), error correction level L or M, versions 1-15, which is plenty for a
 * gallery link (version 15-M holds 412 bytes). This file makes the codewords (version choice,
 * padding, Reed-Solomon over GF(256), interleaving) and is the encoder's public face; the grid,
 * its masks and the mask choice are in qr-matrix.js.
 *   encode(text, {ecl: 'M'})  -> {version, size, ecl, mask, modules: Uint8Array(size*size)}
 *   drawCanvas(canvas, qr, {scale, pixels, quiet, dark, light})
 */

import {
  applyMask, formatBits, Matrix, penalty, placeData, placeFormat, placeFunctionPatterns
} from './qr-matrix.js';

// ---------------------------------------------------------------- codewords

// Per version: [ecCodewordsPerBlock, blocksGroup1, dataCwGroup1, blocksGroup2, dataCwGroup2]
// for levels L and M (index 0 is unused).
const EC_TABLE = {
  L: [null,
    [7, 1, 19, 0, 0], [10, 1, 34, 0, 0], [15, 1, 55, 0, 0], [20, 1, 80, 0, 0],
    [26, 1, 108, 0, 0], [18, 2, 68, 0, 0], [20, 2, 78, 0, 0], [24, 2, 97, 0, 0],
    [30, 2, 116, 0, 0], [18, 2, 68, 2, 69], [20, 4, 81, 0, 0], [24, 2, 92, 2, 93],
    [26, 4, 107, 0, 0], [30, 3, 115, 1, 116], [22, 5, 87, 1, 88]],
  M: [null,
    [10, 1, 16, 0, 0], [16, 1, 28, 0, 0], [26, 1, 44, 0, 0], [18, 2, 32, 0, 0],
    [24, 2, 43, 0, 0], [16, 4, 27, 0, 0], [18, 4, 31, 0, 0], [22, 2, 38, 2, 39],
    [22, 3, 36, 2, 37], [26, 4, 43, 1, 44], [30, 1, 50, 4, 51], [22, 6, 36, 2, 37],
    [22, 8, 37, 1, 38], [24, 4, 40, 5, 41], [24, 5, 41, 5, 42]],
};
export const MAX_VERSION = 15;

// ---- GF(256) arithmetic with the QR polynomial x^8 + x^4 + x^3 + x^2 + 1 ----
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
(function initTables() {
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
})();

function gfMul(a, b) {
  if (a === 0 || b === 0) return 0;
  return EXP[LOG[a] + LOG[b]];
}

// Generator polynomial of the given degree, highest coefficient first (leading 1 omitted).
const generatorCache = new Map();
function generator(degree) {
  if (generatorCache.has(degree)) return generatorCache.get(degree);
  let poly = [1];
  for (let i = 0; i < degree; i++) {
    const next = new Array(poly.length + 1).fill(0);
    for (let j = 0; j < poly.length; j++) {
      next[j] ^= poly[j];
      next[j + 1] ^= gfMul(poly[j], EXP[i]);
    }
    poly = next;
  }
  const result = poly.slice(1);
  generatorCache.set(degree, result);
  return result;
}

export function reedSolomon(data, degree) {
  const gen = generator(degree);
  const rem = new Array(degree).fill(0);
  for (const byte of data) {
    const factor = byte ^ rem[0];
    rem.shift();
    rem.push(0);
    if (factor !== 0) {
      for (let i = 0; i < degree; i++) rem[i] ^= gfMul(gen[i], factor);
    }
  }
  return rem;
}

function capacityBytes(version, ecl) {
  const [, b1, d1, b2, d2] = EC_TABLE[ecl][version];
  return b1 * d1 + b2 * d2;
}

// ---- data encoding ----
function utf8(text) {
  if (typeof TextEncoder !== 'undefined') return Array.from(new TextEncoder().encode(text));
  const out = [];
  const s = unescape(encodeURIComponent(text));
  for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
  return out;
}

function chooseVersion(byteLength, ecl) {
  for (let v = 1; v <= MAX_VERSION; v++) {
    const countBits = v < 10 ? 8 : 16;
    const needBits = 4 + countBits + byteLength * 8;
    if (needBits <= capacityBytes(v, ecl) * 8) return v;
  }
  return 0;
}

function dataCodewords(bytes, version, ecl) {
  const capacity = capacityBytes(version, ecl);
  const bits = [];
  const put = (value, length) => {
    for (let i = length - 1; i >= 0; i--) bits.push((value >>> i) & 1);
  };
  put(0b0100, 4); // byte mode
  put(bytes.length, version < 10 ? 8 : 16);
  for (const b of bytes) put(b, 8);
  const capacityBits = capacity * 8;
  put(0, Math.min(4, capacityBits - bits.length)); // terminator
  while (bits.length % 8 !== 0) bits.push(0);
  const out = [];
  for (let i = 0; i < bits.length; i += 8) {
    let v = 0;
    for (let j = 0; j < 8; j++) v = (v << 1) | bits[i + j];
    out.push(v);
  }
  for (let pad = 0; out.length < capacity; pad++) out.push(pad % 2 === 0 ? 0xec : 0x11);
  return out;
}

function interleave(data, version, ecl) {
  const [ecLen, b1, d1, b2, d2] = EC_TABLE[ecl][version];
  const blocks = [];
  let offset = 0;
  for (let i = 0; i < b1 + b2; i++) {
    const len = i < b1 ? d1 : d2;
    const block = data.slice(offset, offset + len);
    offset += len;
    blocks.push({ data: block, ec: reedSolomon(block, ecLen) });
  }
  const out = [];
  const maxData = Math.max(d1, d2);
  for (let i = 0; i < maxData; i++) {
    for (const b of blocks) if (i < b.data.length) out.push(b.data[i]);
  }
  for (let i = 0; i < ecLen; i++) {
    for (const b of blocks) out.push(b.ec[i]);
  }
  return out;
}

// ---------------------------------------------------------------- encoding

export function encode(text, options) {
  const ecl = (options && options.ecl) === 'L' ? 'L' : 'M';
  const bytes = utf8(String(text));
  const version = chooseVersion(bytes.length, ecl);
  if (!version) throw new Error('Text too long for a QR code (' + bytes.length + ' bytes)');
  const codewords = interleave(dataCodewords(bytes, version, ecl), version, ecl);

  const base = new Matrix(version);
  placeFunctionPatterns(base, version);
  placeData(base, codewords);

  let best = null;
  for (let mask = 0; mask < 8; mask++) {
    const m = new Matrix(version);
    m.modules.set(base.modules);
    m.reserved.set(base.reserved);
    applyMask(m, mask);
    placeFormat(m, formatBits(ecl, mask));
    const score = penalty(m);
    if (!best || score < best.score) best = { m, mask, score };
  }
  return { version, size: best.m.size, ecl, mask: best.mask, modules: best.m.modules };
}

export function drawCanvas(canvas, qr, options) {
  const opts = options || {};
  const quiet = opts.quiet == null ? 4 : opts.quiet;
  const total = qr.size + quiet * 2;
  const scale = opts.scale || Math.max(2, Math.floor((opts.pixels || 320) / total));
  canvas.width = total * scale;
  canvas.height = total * scale;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = opts.light || '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = opts.dark || '#000000';
  for (let y = 0; y < qr.size; y++) {
    for (let x = 0; x < qr.size; x++) {
      if (qr.modules[y * qr.size + x]) {
        ctx.fillRect((x + quiet) * scale, (y + quiet) * scale, scale, scale);
      }
    }
  }
  return canvas;
}
