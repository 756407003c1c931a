/*
 * hafi-realtime admin page, QR encoder: the module grid. Draws the function patterns (finders,
 * timing, alignment) and the format and version information, lays the codewords out in the
 * standard's two-column zigzag, and scores the eight data masks with the standard's penalty
 * rules (runs, 2x2 blocks, finder-like patterns, balance) so encode() can keep the best.
 */

// ---------------------------------------------------------------- the grid

const ECL_BITS = { L: 1, M: 0 };

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

// ---- matrix ----
export function Matrix(version) {
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

export function formatBits(ecl, mask) {
  const data = (ECL_BITS[ecl] << 3) | mask;
  return ((data << 10) | bchRemainder(data, 0x537, 10)) ^ 0x5412;
}

function versionBits(version) {
  return (version << 12) | bchRemainder(version, 0x1f25, 12);
}

export function placeFunctionPatterns(m, version) {
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

export function placeFormat(m, bits) {
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

export function placeData(m, codewords) {
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

// ---------------------------------------------------------------- masks

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

export function applyMask(m, mask) {
  const fn = MASKS[mask];
  const n = m.size;
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const i = y * n + x;
      if (!m.reserved[i] && fn(x, y)) m.modules[i] ^= 1;
    }
  }
}

export function penalty(m) {
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
