// The page's Socket.IO client on its own, in Node: how it reads the packets the server sends.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importStatic } from './support/files.mjs';

const { HafiSio } = await importStatic('sio.js');

test('sio.js: Socket.IO packet parsing', () => {
  const parse = HafiSio.parsePacket;
  const plain = (v) => JSON.parse(JSON.stringify(v));
  assert.deepEqual(plain(parse('0{"sid":"abc"}')), { type: '0', nsp: '/', id: null, data: { sid: 'abc' } });
  assert.deepEqual(plain(parse('4{"message":"Authentication required"}')).data, { message: 'Authentication required' });
  assert.deepEqual(plain(parse('2["admin:room",{"slug":"a","guestCount":3}]')).data, ['admin:room', { slug: 'a', guestCount: 3 }]);
  assert.deepEqual(plain(parse('212["x",1]')), { type: '2', nsp: '/', id: 12, data: ['x', 1] });
  assert.deepEqual(plain(parse('2/admin,["x"]')), { type: '2', nsp: '/admin', id: null, data: ['x'] });
  assert.deepEqual(plain(parse('1')), { type: '1', nsp: '/', id: null });
  assert.equal(parse('2[not json'), null);
});
