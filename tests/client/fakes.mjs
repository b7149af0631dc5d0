// The failure modes our own server never produces, served on a port of their own (another
// origin, so through CORS, as a page meets them): a stream with a malformed event, `204`,
// `401`. `hits` counts the requests each endpoint got.
import { createServer } from 'node:http';
import { freePort } from '../support/tidings.mjs';

const todo = (id, title) => ({ id, list_id: 'inbox', title, done: false, created_at: 1, updated_at: 1 });

/** A stream with a message that is not JSON, one of the wrong shape, then a good one. */
function malformed(res) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const connected = { type: 'connected', server_version: 'fake', last_event_id: 0, resume_from: 0, heartbeat_secs: 30 };
  res.write(`id: 0\nevent: connected\ndata: ${JSON.stringify(connected)}\n\n`);
  res.write('id: 1\nevent: todo_created\ndata: {this is not json\n\n');
  res.write(`id: 2\nevent: todo_created\ndata: ${JSON.stringify({ type: 'todo_created', todo: { id: 5, title: [] } })}\n\n`);
  res.write(`id: 3\nevent: todo_created\ndata: ${JSON.stringify({ type: 'todo_created', todo: todo('good', 'survived') })}\n\n`);
  // Stays open until the client goes away.
}

export class Fakes {
  constructor() {
    this.hits = new Map();
    this.http = createServer((req, res) => this.serve(req, res));
  }

  async start() {
    this.port = await freePort();
    await new Promise((resolve) => this.http.listen(this.port, '127.0.0.1', resolve));
    return this;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  hitsOf(name) {
    return this.hits.get(name) ?? 0;
  }

  stop() {
    this.http.closeAllConnections();
    return new Promise((resolve) => this.http.close(resolve));
  }

  serve(req, res) {
    const count = (name) => this.hits.set(name, this.hitsOf(name) + 1);
    const cors = {
      'access-control-allow-origin': '*',
      'access-control-allow-headers': '*',
      'access-control-allow-methods': 'GET, POST',
    };
    for (const [k, v] of Object.entries(cors)) res.setHeader(k, v);
    const json = (status, value) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    if (req.method === 'OPTIONS') return res.writeHead(204).end();
    switch (new URL(req.url, 'http://x').pathname) {
      case '/malformed/api/events':
        count('malformed');
        return malformed(res);
      case '/malformed/api/lists':
        return json(200, { lists: [], last_event_id: 0 });
      case '/stop/api/events':
        count('stop');
        return res.writeHead(204).end();
      case '/unauthorized/api/events':
        count('unauthorized');
        return json(401, { error: { code: 'unauthorized', message: 'no token' } });
      default:
        return json(404, { error: { code: 'not_found', message: req.url } });
    }
  }
}
