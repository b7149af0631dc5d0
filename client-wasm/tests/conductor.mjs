// The Rust API test's conductor: runs a real tidings-server and tells the test page where it
// is (`/info`). Prints its own URL on stdout, then serves until killed.
import { createServer } from 'node:http';
import { TidingsServer, freePort } from '../../tests/support/tidings.mjs';

const server = new TidingsServer({ env: { TIDINGS_HEARTBEAT_SECS: '1' } });
await server.start();

const http = createServer((req, res) => {
  res.setHeader('access-control-allow-origin', '*');
  const found = new URL(req.url, 'http://x').pathname === '/info';
  res.writeHead(found ? 200 : 404, { 'content-type': 'application/json' });
  res.end(JSON.stringify(found ? { server: server.url } : { error: { code: 'not_found', message: req.url } }));
});

const port = await freePort();
http.listen(port, '127.0.0.1', () => console.log(`http://127.0.0.1:${port}`));
const quit = async () => {
  http.close();
  await server.dispose();
  process.exit(0);
};
process.on('SIGTERM', quit);
process.on('SIGINT', quit);
