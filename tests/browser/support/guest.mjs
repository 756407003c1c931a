// A guest played by a raw Engine.IO/Socket.IO websocket (npm `ws`): joins with a guest session,
// sends events and waits, bounded in time, for the ones the server sends back.

import WebSocket from 'ws';

export class RawGuest {
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
