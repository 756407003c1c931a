// Starts and stops the real server binary ($HAFI_BIN) for the socket.io-client suite, each run
// with its own port, data directory and secret, and never with the caller's server settings.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as pathJoin } from 'node:path';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { mintToken } from './api.mjs';

// Environment variables that configure the server; never inherit them from
// the caller's environment so a stray NODE_ENV=production or SOCKET_PORT
// cannot change what the suite tests.
const SERVER_ENV_VARS = [
  'SOCKET_PORT', 'SOCKET_HOST', 'NODE_ENV', 'HAFI_ENV', 'HAFI_CONFIG', 'NEXTAUTH_SECRET',
  'ALLOWED_ORIGINS', 'DATA_DIR', 'TRUSTED_PROXIES', 'SOCKET_GUEST_SESSION_VALIDATION_DISABLED',
  'RUST_LOG', 'LOG_FORMAT', 'MAX_CONNECTIONS', 'MAX_CONNECTIONS_PER_IP', 'METRICS_TOKEN',
];

const liveServers = new Set();
process.on('exit', () => {
  for (const child of liveServers) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});


function requireBinary() {
  const bin = process.env.HAFI_BIN;
  if (!bin) {
    throw new Error('HAFI_BIN is not set: point it at the hafi-realtime binary, e.g. '
      + 'HAFI_BIN=/work/main/target/debug/hafi-realtime node --test');
  }
  if (!existsSync(bin)) {
    throw new Error(`HAFI_BIN=${bin} does not exist (build the server first)`);
  }
  return bin;
}

/**
 * Start the server on a random port with a fresh data directory.
 * options.config: TOML text written to <tmp>/config.toml and passed with --config.
 * options.env: extra environment variables for the server.
 * options.dataDir, options.secret: reuse a data directory and secret (restart tests).
 * Returns { url, secret, dataDir, adminToken, stop(), alive(), output() }.
 */
export async function startServer(options = {}) {
  const bin = requireBinary();
  const tmp = mkdtempSync(pathJoin(tmpdir(), 'hafi-js-'));
  // options.dataDir / options.secret: reuse another run's data (restart tests);
  // a data dir passed in is not deleted by stop().
  const dataDir = options.dataDir || pathJoin(tmp, 'data');
  const secret = options.secret || randomBytes(36).toString('base64url'); // 48 characters
  assert.equal(secret.length, 48);

  const args = ['serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir];
  if (options.config) {
    const configPath = pathJoin(tmp, 'config.toml');
    writeFileSync(configPath, options.config);
    args.push('--config', configPath);
  }

  const env = { ...process.env };
  for (const k of SERVER_ENV_VARS) delete env[k];
  Object.assign(env, {
    NEXTAUTH_SECRET: secret,
    RUST_LOG: 'warn',
    RUST_BACKTRACE: '1',
    ...(options.env || {}),
  });

  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  liveServers.add(child);

  let stdoutBuf = '';
  let stderrBuf = '';
  const keep = (buf, s) => (buf + s).slice(-20000);
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { stderrBuf = keep(stderrBuf, d); });

  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      liveServers.delete(child);
      resolve(exitInfo);
    });
  });
  const output = () => `--- server stdout ---\n${stdoutBuf}\n--- server stderr ---\n${stderrBuf}`;

  const url = await new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    let done = false;
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(err); else resolve(value);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      finish(new Error(`server did not print "listening on ..." within 15 s\n${output()}`));
    }, 15000);
    rl.on('line', (line) => {
      stdoutBuf = keep(stdoutBuf, line + '\n');
      const m = /^listening on (http:\/\/127\.0\.0\.1:(\d+))\s*$/.exec(line);
      if (m && Number(m[2]) > 0) finish(null, m[1]);
    });
    child.on('error', (e) => finish(new Error(`cannot spawn ${bin}: ${e.message}`)));
    exited.then((info) => finish(new Error(
      `server exited before it was ready (code ${info.code}, signal ${info.signal})\n${output()}`)));
  });

  let stopping = null;
  const server = {
    url,
    secret,
    dataDir,
    tmp,
    child,
    sockets: new Set(),
    output,
    /** true while the process has not exited. */
    alive: () => exitInfo === null,
    exitInfo: () => exitInfo,
    /** SIGKILL at once and wait for the exit (crash simulation); keeps the data directory. */
    async kill9() {
      if (exitInfo === null) {
        child.kill('SIGKILL');
        await exited;
      }
      return exitInfo;
    },
    /**
     * SIGTERM, wait for exit (SIGKILL after 5 s). Resolves { code, signal, crashed, forced, ms }.
     * stop({ keepData: true }) leaves the data directory in place.
     */
    stop({ keepData = false } = {}) {
      if (stopping) return stopping;
      stopping = (async () => {
        for (const s of server.sockets) {
          try { s.disconnect(); } catch { /* ignore */ }
        }
        server.sockets.clear();
        const crashed = exitInfo !== null; // died before we asked it to
        const t0 = Date.now();
        let forced = false;
        if (!crashed) {
          child.kill('SIGTERM');
          const killer = setTimeout(() => { forced = true; child.kill('SIGKILL'); }, 5000);
          await exited;
          clearTimeout(killer);
        }
        if (!keepData) {
          try { rmSync(tmp, { recursive: true, force: true }); } catch { /* ignore */ }
        }
        return { ...exitInfo, crashed, forced, ms: Date.now() - t0 };
      })();
      return stopping;
    },
  };
  server.adminToken = mintToken(secret, { user_id: 'admin-1', role: 'ADMIN' });
  return server;
}

/** Call in after(): stops the server and fails if it had crashed during the file. */
export async function stopServer(server) {
  if (!server) return;
  const info = await server.stop();
  assert.equal(info.crashed, false,
    `server process died during the tests (code ${info.code}, signal ${info.signal})\n${server.output()}`);
}
