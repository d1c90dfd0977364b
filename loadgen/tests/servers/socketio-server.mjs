// A Socket.IO v4 server for loadgen's profile tests: the "echo" event is
// acknowledged with its argument after DELAY_MS (default 0) ms; it pings
// every PING_INTERVAL_MS and drops a client that does not answer within
// PING_TIMEOUT_MS (Socket.IO's own defaults otherwise). Prints
// "LISTENING <port>" once ready; PORT=0 (the default) picks a free port.
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const delay = Number(process.env.DELAY_MS || 0);
const http = createServer();
const io = new Server(http, {
  transports: ['websocket'],
  pingInterval: Number(process.env.PING_INTERVAL_MS || 25000),
  pingTimeout: Number(process.env.PING_TIMEOUT_MS || 20000),
});
io.on('connection', (socket) => {
  socket.on('echo', (arg, ack) => {
    if (typeof ack !== 'function') return;
    if (delay > 0) setTimeout(() => ack(arg), delay); else ack(arg);
  });
});
http.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`LISTENING ${http.address().port}`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
