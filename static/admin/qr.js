/*
 * hafi-realtime admin page: a small QR code encoder (ISO/IEC 18004), written for this page.
 *
 * Byte mode only (UTF-8), error correction level L or M, versions 1-15, which is plenty for a
 * gallery link (version 15-M holds 412 bytes). Exposes window.HafiQR:
 *   HafiQR.encode(text, {ecl: 'M'})  -> {version, size, ecl, mask, modules: Uint8Array(size*size)}
 *   HafiQR.drawCanvas(canvas, qr, {scale, quiet, dark, light})
 */
(function (global) {
  'use strict';

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
  const MAX_VERSION = 15;
  const ECL_BITS = { L: 1, M: 0 };

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

  function reedSolomon(data, degree) {
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

  // ---- geometry ----
  function sizeOf(version) { return version * 4 + 17; }

  function alignmentPositions(version) {
    if (version === 1) return [];
    const count = Math.floor(version / 7) + 2;
    const last = sizeOf(version) - 7;
    const step = Math.ceil((last - 6) / (count - 1) / 2) * 2;
    const out = [6];
    for (let k = count - 2; k >= 0; k--) out.push(last - k * step);
    return out;
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

  // ---- matrix ----
  function Matrix(version) {
    this.size = sizeOf(version);
    this.modules = new Uint8Array(this.size * this.size);
    this.reserved = new Uint8Array(this.size * this.size);
  }
  Matrix.prototype.set = function (x, y, dark, reserve) {
    const i = y * this.size + x;
    this.modules[i] = dark ? 1 : 0;
    if (reserve !== false) this.reserved[i] = 1;
  };
  Matrix.prototype.get = function (x, y) { return this.modules[y * this.size + x]; };

  function placeFinder(m, cx, cy) {
    for (let dy = -4; dy <= 4; dy++) {
      for (let dx = -4; dx <= 4; dx++) {
        const x = cx + dx;
        const y = cy + dy;
        if (x < 0 || y < 0 || x >= m.size || y >= m.size) continue;
        const d = Math.max(Math.abs(dx), Math.abs(dy));
        m.set(x, y, d !== 2 && d !== 4);
      }
    }
  }

  function placeAlignment(m, cx, cy) {
    for (let dy = -2; dy <= 2; dy++) {
      for (let dx = -2; dx <= 2; dx++) {
        m.set(cx + dx, cy + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
      }
    }
  }

  function bchRemainder(value, poly, polyDegree) {
    let v = value << polyDegree;
    const top = 1 << polyDegree;
    for (let bit = 31 - Math.clz32(v); bit >= polyDegree; bit--) {
      if (v & (1 << bit)) v ^= poly << (bit - polyDegree);
    }
    return v & (top - 1);
  }

  function formatBits(ecl, mask) {
    const data = (ECL_BITS[ecl] << 3) | mask;
    return ((data << 10) | bchRemainder(data, 0x537, 10)) ^ 0x5412;
  }

  function versionBits(version) {
    return (version << 12) | bchRemainder(version, 0x1f25, 12);
  }

  function placeFunctionPatterns(m, version) {
    const n = m.size;
    placeFinder(m, 3, 3);
    placeFinder(m, n - 4, 3);
    placeFinder(m, 3, n - 4);
    for (let i = 8; i < n - 8; i++) {
      m.set(i, 6, i % 2 === 0);
      m.set(6, i, i % 2 === 0);
    }
    const pos = alignmentPositions(version);
    for (const ay of pos) {
      for (const ax of pos) {
        const nearFinder = (ax === 6 && ay === 6) || (ax === 6 && ay === pos[pos.length - 1])
          || (ax === pos[pos.length - 1] && ay === 6);
        if (!nearFinder) placeAlignment(m, ax, ay);
      }
    }
    // Reserve the format areas (written for real after masking) and the dark module.
    placeFormat(m, 0);
    m.set(8, n - 8, true);
    if (version >= 7) {
      const bits = versionBits(version);
      for (let i = 0; i < 18; i++) {
        const dark = ((bits >>> i) & 1) === 1;
        const a = n - 11 + (i % 3);
        const b = Math.floor(i / 3);
        m.set(a, b, dark);
        m.set(b, a, dark);
      }
    }
  }

  function placeFormat(m, bits) {
    const n = m.size;
    const bit = (i) => ((bits >>> i) & 1) === 1;
    // Around the top-left finder.
    for (let i = 0; i <= 5; i++) m.set(8, i, bit(i));
    m.set(8, 7, bit(6));
    m.set(8, 8, bit(7));
    m.set(7, 8, bit(8));
    for (let i = 9; i < 15; i++) m.set(14 - i, 8, bit(i));
    // Split copy beside the other two finders.
    for (let i = 0; i < 8; i++) m.set(n - 1 - i, 8, bit(i));
    for (let i = 8; i < 15; i++) m.set(8, n - 15 + i, bit(i));
    m.set(8, n - 8, true);
  }

  function placeData(m, codewords) {
    const n = m.size;
    let bitIndex = 0;
    const totalBits = codewords.length * 8;
    for (let right = n - 1; right >= 1; right -= 2) {
      if (right === 6) right = 5; // skip the vertical timing column
      for (let vert = 0; vert < n; vert++) {
        for (let j = 0; j < 2; j++) {
          const x = right - j;
          const upward = ((right + 1) & 2) === 0;
          const y = upward ? n - 1 - vert : vert;
          if (m.reserved[y * n + x]) continue;
          let dark = false;
          if (bitIndex < totalBits) {
            dark = ((codewords[bitIndex >>> 3] >>> (7 - (bitIndex & 7))) & 1) === 1;
            bitIndex++;
          }
          m.set(x, y, dark, false);
        }
      }
    }
  }

  const MASKS = [
    (x, y) => (x + y) % 2 === 0,
    (x, y) => y % 2 === 0,
    (x, y) => x % 3 === 0,
    (x, y) => (x + y) % 3 === 0,
    (x, y) => (Math.floor(y / 2) + Math.floor(x / 3)) % 2 === 0,
    (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
    (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
    (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
  ];

  function applyMask(m, mask) {
    const fn = MASKS[mask];
    const n = m.size;
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        const i = y * n + x;
        if (!m.reserved[i] && fn(x, y)) m.modules[i] ^= 1;
      }
    }
  }

  function penalty(m) {
    const n = m.size;
    const g = (x, y) => m.modules[y * n + x];
    let score = 0;
    // Rule 1: runs of five or more same-colour modules in a row or column.
    for (let pass = 0; pass < 2; pass++) {
      for (let a = 0; a < n; a++) {
        let run = 1;
        let prev = pass === 0 ? g(0, a) : g(a, 0);
        for (let b = 1; b < n; b++) {
          const cur = pass === 0 ? g(b, a) : g(a, b);
          if (cur === prev) {
            run++;
          } else {
            if (run >= 5) score += run - 2;
            run = 1;
            prev = cur;
          }
        }
        if (run >= 5) score += run - 2;
      }
    }
    // Rule 2: 2x2 blocks of one colour.
    for (let y = 0; y < n - 1; y++) {
      for (let x = 0; x < n - 1; x++) {
        const c = g(x, y);
        if (c === g(x + 1, y) && c === g(x, y + 1) && c === g(x + 1, y + 1)) score += 3;
      }
    }
    // Rule 3: finder-like patterns 1:1:3:1:1 with four light modules on one side.
    const pattern = [1, 0, 1, 1, 1, 0, 1];
    const lightAt = (pass, a, b) => {
      if (b < 0 || b >= n) return true;
      return (pass === 0 ? g(b, a) : g(a, b)) === 0;
    };
    for (let pass = 0; pass < 2; pass++) {
      for (let a = 0; a < n; a++) {
        for (let b = 0; b + 7 <= n; b++) {
          let match = true;
          for (let k = 0; k < 7 && match; k++) {
            const v = pass === 0 ? g(b + k, a) : g(a, b + k);
            if (v !== pattern[k]) match = false;
          }
          if (!match) continue;
          let before = true;
          let after = true;
          for (let k = 1; k <= 4; k++) {
            if (!lightAt(pass, a, b - k)) before = false;
            if (!lightAt(pass, a, b + 6 + k)) after = false;
          }
          if (before || after) score += 40;
        }
      }
    }
    // Rule 4: balance of dark and light.
    let dark = 0;
    for (let i = 0; i < m.modules.length; i++) dark += m.modules[i];
    const percent = (dark * 100) / m.modules.length;
    score += Math.floor(Math.abs(percent - 50) / 5) * 10;
    return score;
  }

  function encode(text, options) {
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

  function drawCanvas(canvas, qr, options) {
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

  const api = { encode, drawCanvas, MAX_VERSION, _internal: { alignmentPositions, capacityBytes, formatBits, versionBits, reedSolomon } };
  global.HafiQR = api;
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
})(typeof window !== 'undefined' ? window : globalThis);
