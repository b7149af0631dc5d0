// Unit tests of the package's plain JavaScript helpers (client-wasm/js), in Node.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withQuery } from '../../client-wasm/js/connection.js';
import { uuid } from '../../client-wasm/js/feed.js';

test('resume parameters replace a value in the query, not repeat it', () => {
  assert.equal(withQuery('/e', 'last_event_id', '7'), '/e?last_event_id=7');
  assert.equal(
    withQuery('http://h/e?list=a&last_event_id=3&x', 'last_event_id', '9'),
    'http://h/e?list=a&x&last_event_id=9',
  );
  assert.equal(withQuery('/e?a=1#top', 't', 'a b&c'), '/e?a=1&t=a%20b%26c#top');
  assert.equal(withQuery('/e?last_event_id_x=1', 'last_event_id', '2'), '/e?last_event_id_x=1&last_event_id=2');
});

test('random bytes make a version 4 UUID where crypto.randomUUID is missing', () => {
  assert.equal(uuid(() => 255 / 256), 'ffffffff-ffff-4fff-bfff-ffffffffffff');
  let i = 0;
  assert.equal(uuid(() => (i++ * 17) / 256), '00112233-4455-4677-8899-aabbccddeeff');
});
