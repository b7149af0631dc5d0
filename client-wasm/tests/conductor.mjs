// The browser tests' conductor: runs a real tidings-server, stops and restarts it on
// request, writes changes through a second server process on the same database while the
// first is down, and serves the few failure modes our own server never produces (a
// malformed event, 204, 401). Prints its URL on stdout, then serves until killed.
import { createServer } from 'node:http';
import { TidingsServer, freePort } from '../../tests/support/tidings.mjs';

const server = new TidingsServer({ env: { TIDINGS_HEARTBEAT_SECS: '1' } });
await server.start();
const hits = new Map();
const count = (name) => hits.set(name, (hits.get(name) ?? 0) + 1);

const todo = (id, title) => ({
  id, list_id: 'inbox', title, done: false, created_at: 1, updated_at: 1,
});

// The fake stream: a message that is not JSON, one of the wrong shape, then a good one.
function malformed(res) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const connected = { type: 'connected', server_version: 'fake', last_event_id: 0, resume_from: 0, heartbeat_secs: 30 };
  res.write(`id: 0\nevent: connected\ndata: ${JSON.stringify(connected)}\n\n`);
  res.write('id: 1\nevent: todo_created\ndata: {this is not json\n\n');
  res.write(`id: 2\nevent: todo_created\ndata: ${JSON.stringify({ type: 'todo_created', todo: { id: 5, title: [] } })}\n\n`);
  res.write(`id: 3\nevent: todo_created\ndata: ${JSON.stringify({ type: 'todo_created', todo: todo('good', 'survived') })}\n\n`);
  // Stay open (until the client goes away).
}

async function body(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text ? JSON.parse(text) : {};
}

const http = createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  const cors = {
    'access-control-allow-origin': '*',
    'access-control-allow-headers': '*',
    'access-control-allow-methods': 'GET, POST',
  };
  const json = (status, value) => {
    res.writeHead(status, { ...cors, 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };
  for (const [k, v] of Object.entries(cors)) res.setHeader(k, v);
  if (req.method === 'OPTIONS') return res.writeHead(204).end();
  try {
    switch (url.pathname) {
      case '/info':
        return json(200, { server: server.url });
      case '/server/stop':
        await server.stop();
        return json(200, {});
      case '/server/start':
        await server.start();
        return json(200, { server: server.url });
      case '/offline': {
        // Changes made while the tested server is down, by another process on its database.
        const { ops } = await body(req);
        const other = new TidingsServer({ dir: server.dir, port: await freePort() });
        await other.start();
        const results = [];
        try {
          for (const op of ops) results.push(await other.api(op.method, op.path, op.body));
        } finally {
          await other.stop();
        }
        return json(200, { results });
      }
      case '/hits':
        return json(200, Object.fromEntries(hits));
      case '/fake/malformed/api/events':
        count('malformed');
        return malformed(res);
      case '/fake/malformed/api/lists':
        return json(200, { lists: [], last_event_id: 0 });
      case '/fake/stop/api/events':
        count('stop');
        return res.writeHead(204).end();
      case '/fake/unauthorized/api/events':
        count('unauthorized');
        return json(401, { error: { code: 'unauthorized', message: 'no token' } });
      default:
        return json(404, { error: { code: 'not_found', message: url.pathname } });
    }
  } catch (e) {
    return json(500, { error: { code: 'conductor_failed', message: String(e) } });
  }
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
