// Constants and small helpers every part of the socket.io-client suite's harness uses.

import { randomBytes } from 'node:crypto';

export const DEFAULT_TIMEOUT = 3000;
export const ISO_MS_Z = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function randomId(prefix = '') {
  return prefix + randomBytes(6).toString('hex');
}

export function uniqueSlug(prefix = 'ev') {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}
