// BASELINE for the tidings load benchmark — not part of tidings.
//
// The SSE server people copy from tutorials: node:http, a Set of open response objects, and
// on every change a loop that JSON.stringify's the event and res.write()s it to each client.
// In-memory only: no event log, so `Last-Event-ID` is ignored (a reconnecting client misses
// what happened meanwhile), and a client that stops reading makes Node buffer its writes in
// memory without limit. It speaks the same wire shape as tidings so one generator drives both:
//   POST /api/lists                 {id, title}  -> 201
//   POST /api/lists/<list>/todos    {title}      -> 201 + todo, one `todo_created` event
//   GET  /api/events?list=<list>                 -> text/event-stream (`connected` first)
//   GET  /health                                 -> {open_streams, last_event_id}
import http from 'node:http';
import { randomUUID } from 'node:crypto';

const port = Number(process.env.PORT ?? 8001);
const host = process.env.HOST ?? '127.0.0.1';
const HEARTBEAT_MS = 15000;

const clients = new Set();
const lists = new Map([['inbox', { id: 'inbox', title: 'Inbox' }]]);
let lastEventId = 0;

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function readJson(req, done) {
  let raw = '';
  req.setEncoding('utf8');
  req.on('data', (chunk) => { raw += chunk; });
  req.on('end', () => {
    try { done(null, JSON.parse(raw)); } catch (err) { done(err); }
  });
}

function broadcast(type, payload) {
  lastEventId += 1;
  const id = lastEventId;
  for (const res of clients) {
    res.write(`id: ${id}\nevent: ${type}\ndata: ${JSON.stringify({ type, ...payload })}\n\n`);
  }
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, `http://${req.headers.host ?? 'localhost'}`);
  const parts = url.pathname.split('/').filter(Boolean);

  if (req.method === 'GET' && url.pathname === '/api/events') {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
    });
    res.write(`id: ${lastEventId}\nevent: connected\ndata: ${JSON.stringify({ type: 'connected', last_event_id: lastEventId })}\n\n`);
    clients.add(res);
    req.on('close', () => clients.delete(res));
    return;
  }
  if (req.method === 'GET' && url.pathname === '/health') {
    return json(res, 200, { status: 'ok', open_streams: clients.size, last_event_id: lastEventId });
  }
  if (req.method === 'POST' && url.pathname === '/api/lists') {
    return readJson(req, (err, body) => {
      if (err || typeof body.title !== 'string') return json(res, 400, { error: { code: 'invalid_json' } });
      const list = { id: body.id ?? randomUUID(), title: body.title, created_at: Date.now() };
      const created = !lists.has(list.id);
      if (created) {
        lists.set(list.id, list);
        broadcast('list_created', { list });
      }
      return json(res, created ? 201 : 200, lists.get(list.id));
    });
  }
  if (req.method === 'POST' && parts.length === 4 && parts[0] === 'api' && parts[1] === 'lists' && parts[3] === 'todos') {
    return readJson(req, (err, body) => {
      if (err || typeof body.title !== 'string') return json(res, 400, { error: { code: 'invalid_json' } });
      if (!lists.has(parts[2])) return json(res, 404, { error: { code: 'list_not_found' } });
      const now = Date.now();
      const todo = { id: randomUUID(), list_id: parts[2], title: body.title, done: false, created_at: now, updated_at: now };
      broadcast('todo_created', { todo });
      return json(res, 201, todo);
    });
  }
  json(res, 404, { error: { code: 'not_found' } });
});

// One timer for every client, as the tutorials do.
setInterval(() => {
  for (const res of clients) res.write('event: heartbeat\ndata: {"type":"heartbeat"}\n\n');
}, HEARTBEAT_MS).unref();

// Same accept backlog as tidings (tokio's default of 1024).
server.listen(port, host, 1024);
process.on('SIGTERM', () => process.exit(0));
