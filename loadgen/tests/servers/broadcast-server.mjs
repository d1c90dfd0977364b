// A pub/sub broadcast server on the `ws` library, for loadgen's fan-out
// tests. A client joins a group with {"join":"g1"} (answered
// {"joined":"g1"}); a message {"pub":"g1",...} goes, as sent, to every
// other member of the group. DROP_EVERY=K leaves out every K-th delivery
// (a lossy server). GET /stats answers {"published","attempts","dropped"}.
// Prints "LISTENING <port>" once ready; PORT=0 (the default) picks a port.
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const dropEvery = Number(process.env.DROP_EVERY || 0);
const groups = new Map();
const stats = { published: 0, attempts: 0, dropped: 0 };

const http = createServer((req, res) => {
  if (req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(stats));
  } else {
    res.writeHead(404);
    res.end();
  }
});
const wss = new WebSocketServer({ server: http });
wss.on('connection', (ws) => {
  let group = null;
  ws.on('message', (data) => {
    const text = data.toString();
    let m;
    try { m = JSON.parse(text); } catch { return; }
    if (typeof m.join === 'string' && group === null) {
      group = m.join;
      if (!groups.has(group)) groups.set(group, new Set());
      groups.get(group).add(ws);
      ws.send(JSON.stringify({ joined: group }));
    } else if (typeof m.pub === 'string' && groups.has(m.pub)) {
      stats.published += 1;
      for (const peer of groups.get(m.pub)) {
        if (peer === ws) continue;
        stats.attempts += 1;
        if (dropEvery > 0 && stats.attempts % dropEvery === 0) {
          stats.dropped += 1;
          continue;
        }
        peer.send(text);
      }
    }
  });
  ws.on('close', () => { if (group !== null) groups.get(group)?.delete(ws); });
});
http.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`LISTENING ${http.address().port}`);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
