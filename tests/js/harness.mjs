// Test harness for the hafi-realtime npm-client integration suite.
//
// Starts the real server binary ($HAFI_BIN), mints HS256 tokens with node:crypto,
// talks to the HTTP admin API with global fetch and opens socket.io-client
// connections. Every wait is bounded so a broken server fails tests instead of
// hanging them.
//
// The parts live in their own files; tests import everything from here.

export * from './common.mjs';
export * from './server.mjs';
export * from './api.mjs';
export * from './sockets.mjs';
