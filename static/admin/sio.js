/*
 * hafi-realtime admin page: a minimal Socket.IO v5 / Engine.IO v4 client over WebSocket,
 * written for this page (no library).
 *
 *   const sio = new HafiSio({ auth: () => ({ token }) });
 *   sio.on('connect', () => sio.emit('admin:join'));
 *   sio.on('admin:room', (data) => ...);
 *   sio.onState((state, info) => ...);   // 'connecting' | 'connected' | 'waiting' | 'closed'
 *   sio.connect();
 *
 * Only the default namespace "/", text packets, the websocket transport. Reconnects with
 * exponential backoff (plus jitter) until close() is called; 'connect' fires again after every
 * reconnect so the page can re-join its rooms and catch up.
 *
 * An ES module: `import { HafiSio } from './sio.js'`.
 */

const EIO = { OPEN: '0', CLOSE: '1', PING: '2', PONG: '3', MESSAGE: '4', UPGRADE: '5', NOOP: '6' };
const SIO = { CONNECT: '0', DISCONNECT: '1', EVENT: '2', ACK: '3', CONNECT_ERROR: '4', BINARY_EVENT: '5', BINARY_ACK: '6' };
const LOCAL_EVENTS = new Set(['connect', 'disconnect', 'connect_error']);

function defaultUrl() {
  const u = new URL('/socket.io/?EIO=4&transport=websocket', location.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.hash = '';
  return u.toString();
}

// Parses the Socket.IO packet inside an Engine.IO "message" (the text after the leading "4").
function parseSioPacket(text) {
  const type = text.charAt(0);
  let i = 1;
  if (type === SIO.BINARY_EVENT || type === SIO.BINARY_ACK) {
    const dash = text.indexOf('-', i);
    if (dash < 0) return null;
    i = dash + 1; // binary attachments are not supported; the JSON part is still read
  }
  let nsp = '/';
  if (text.charAt(i) === '/') {
    const comma = text.indexOf(',', i);
    nsp = comma < 0 ? text.slice(i) : text.slice(i, comma);
    i = comma < 0 ? text.length : comma + 1;
  }
  let id = null;
  let digits = '';
  while (i < text.length && text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) {
    digits += text.charAt(i);
    i++;
  }
  if (digits) id = Number(digits);
  let data;
  if (i < text.length) {
    try {
      data = JSON.parse(text.slice(i));
    } catch (e) {
      return null;
    }
  }
  return { type, nsp, id, data };
}

export class HafiSio {
  constructor(options) {
    const opts = options || {};
    this.url = opts.url || defaultUrl();
    this.authFn = typeof opts.auth === 'function' ? opts.auth : () => opts.auth || {};
    this.minDelay = opts.minDelay || 500;
    this.maxDelay = opts.maxDelay || 15000;
    this.connectTimeout = opts.connectTimeout || 10000;
    this.handlers = new Map();
    this.stateHandlers = [];
    this.ws = null;
    this.sid = null;
    this.state = 'idle';
    this.connected = false;
    this.attempts = 0;
    this.stopped = true;
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.connectTimer = null;
    this.nextRetryAt = 0;
    this.pingInterval = 25000;
    this.pingTimeout = 20000;
    this.ackId = 0;
    this.acks = new Map();
    this.sendBuffer = [];
    this.lastError = null;
  }

  on(name, fn) {
    if (!this.handlers.has(name)) this.handlers.set(name, []);
    this.handlers.get(name).push(fn);
    return this;
  }

  off(name, fn) {
    const list = this.handlers.get(name);
    if (list) this.handlers.set(name, fn ? list.filter((f) => f !== fn) : []);
    return this;
  }

  onState(fn) {
    this.stateHandlers.push(fn);
    return this;
  }

  fire(name, args) {
    const list = this.handlers.get(name);
    if (!list) return;
    for (const fn of list.slice()) {
      try {
        fn.apply(null, args);
      } catch (e) {
        console.error('handler for "' + name + '" failed', e);
      }
    }
  }

  setState(state, info) {
    this.state = state;
    for (const fn of this.stateHandlers) {
      try {
        fn(state, info || {});
      } catch (e) {
        console.error(e);
      }
    }
  }

  connect() {
    this.stopped = false;
    if (this.ws) return this;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.open();
    return this;
  }

  /** Reconnect at once (for a "retry now" button, or when the browser comes back online). */
  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.open();
  }

  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.teardown('io client disconnect', true);
    this.setState('closed', {});
  }

  open() {
    this.setState('connecting', { attempt: this.attempts + 1 });
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.lastError = String(e && e.message || e);
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.connectTimer = setTimeout(() => {
      if (this.ws === ws && !this.connected) {
        this.lastError = 'Connection timed out';
        this.teardown('connect timeout', true);
        this.scheduleReconnect();
      }
    }, this.connectTimeout);
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      if (typeof ev.data === 'string') this.onPacket(ev.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.teardown('transport close', false);
      this.scheduleReconnect();
    };
    ws.onerror = () => {
      if (this.ws === ws) this.lastError = 'Network error';
    };
  }

  teardown(reason, closeSocket) {
    const ws = this.ws;
    this.ws = null;
    clearTimeout(this.heartbeatTimer);
    clearTimeout(this.connectTimer);
    this.heartbeatTimer = null;
    this.connectTimer = null;
    if (ws) {
      ws.onmessage = null;
      ws.onclose = null;
      ws.onerror = null;
      if (closeSocket) {
        try {
          ws.close();
        } catch (e) { /* already closed */ }
      }
    }
    this.acks.clear();
    if (this.connected) {
      this.connected = false;
      this.sid = null;
      this.fire('disconnect', [reason]);
    }
  }

  scheduleReconnect() {
    if (this.stopped || this.retryTimer) return;
    this.attempts++;
    const base = Math.min(this.maxDelay, this.minDelay * Math.pow(2, Math.min(this.attempts - 1, 10)));
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.nextRetryAt = Date.now() + delay;
    this.setState('waiting', { delay, retryAt: this.nextRetryAt, attempt: this.attempts, error: this.lastError });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped && !this.ws) this.open();
    }, delay);
  }

  resetHeartbeat() {
    clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = setTimeout(() => {
      this.lastError = 'Server stopped answering';
      this.teardown('ping timeout', true);
      this.scheduleReconnect();
    }, this.pingInterval + this.pingTimeout);
  }

  sendRaw(text) {
    if (this.ws && this.ws.readyState === 1) {
      this.ws.send(text);
      return true;
    }
    return false;
  }

  onPacket(text) {
    const kind = text.charAt(0);
    const body = text.slice(1);
    this.resetHeartbeat();
    switch (kind) {
      case EIO.OPEN: {
        try {
          const info = JSON.parse(body);
          if (info.pingInterval) this.pingInterval = info.pingInterval;
          if (info.pingTimeout) this.pingTimeout = info.pingTimeout;
        } catch (e) { /* keep the defaults */ }
        this.resetHeartbeat();
        let auth = {};
        try {
          auth = this.authFn() || {};
        } catch (e) { /* connect without auth */ }
        this.sendRaw(EIO.MESSAGE + SIO.CONNECT + JSON.stringify(auth));
        break;
      }
      case EIO.PING:
        this.sendRaw(EIO.PONG + body);
        break;
      case EIO.CLOSE:
        this.teardown('transport close', true);
        this.scheduleReconnect();
        break;
      case EIO.MESSAGE:
        this.onSioPacket(body);
        break;
      default:
        break; // pong, noop, upgrade: nothing to do over websocket
    }
  }

  onSioPacket(text) {
    const p = parseSioPacket(text);
    if (!p || p.nsp !== '/') return;
    switch (p.type) {
      case SIO.CONNECT: {
        clearTimeout(this.connectTimer);
        this.connectTimer = null;
        this.sid = p.data && p.data.sid || null;
        this.connected = true;
        this.attempts = 0;
        this.lastError = null;
        this.setState('connected', { sid: this.sid });
        this.fire('connect', [this.sid]);
        const queued = this.sendBuffer.splice(0);
        for (const packet of queued) this.sendRaw(packet);
        break;
      }
      case SIO.CONNECT_ERROR: {
        const message = p.data && typeof p.data.message === 'string' ? p.data.message : 'Connection refused';
        this.lastError = message;
        this.fire('connect_error', [{ message, data: p.data && p.data.data }]);
        this.teardown('connect error', true);
        this.scheduleReconnect();
        break;
      }
      case SIO.DISCONNECT:
        // The server ended the session (shutdown, kicked). Try again later: at a venue the
        // server restarting is the common case.
        this.lastError = 'Disconnected by the server';
        this.teardown('io server disconnect', true);
        this.scheduleReconnect();
        break;
      case SIO.EVENT:
      case SIO.BINARY_EVENT: {
        if (!Array.isArray(p.data) || typeof p.data[0] !== 'string') return;
        const name = p.data[0];
        if (LOCAL_EVENTS.has(name)) return;
        const args = p.data.slice(1);
        if (p.id !== null) {
          const id = p.id;
          args.push((...reply) => this.sendRaw(EIO.MESSAGE + SIO.ACK + id + JSON.stringify(reply)));
        }
        this.fire(name, args);
        this.fire('*', [name].concat(args));
        break;
      }
      case SIO.ACK:
      case SIO.BINARY_ACK: {
        const fn = this.acks.get(p.id);
        if (fn) {
          this.acks.delete(p.id);
          fn.apply(null, Array.isArray(p.data) ? p.data : []);
        }
        break;
      }
      default:
        break;
    }
  }

  /** emit(name[, data][, ack]). Buffered while disconnected (at most 100 packets). */
  emit(name, ...rest) {
    let ack = null;
    if (rest.length && typeof rest[rest.length - 1] === 'function') ack = rest.pop();
    let packet = EIO.MESSAGE + SIO.EVENT;
    if (ack) {
      const id = this.ackId++;
      this.acks.set(id, ack);
      packet += id;
    }
    packet += JSON.stringify([name].concat(rest));
    if (this.connected && this.sendRaw(packet)) return true;
    if (this.sendBuffer.length < 100) this.sendBuffer.push(packet);
    return false;
  }

  /** Drops emits queued while disconnected (the page re-joins itself on 'connect'). */
  clearBuffer() {
    this.sendBuffer.length = 0;
  }
}

HafiSio.parsePacket = parseSioPacket;
