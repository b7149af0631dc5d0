// Unit tests of the package's plain JavaScript helpers (client-wasm/js), in Node.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { capAttempt, ceiling, delay, sanitize, withQuery } from '../../client-wasm/js/connection.js';
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

test('backoff ceilings grow exponentially to the cap', () => {
  const b = sanitize([]);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((a) => ceiling(b, a)), [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.equal(ceiling(b, 1000), 30000);
  assert.equal(capAttempt(b), 6);
});

test('full jitter spans zero to the ceiling', () => {
  const b = sanitize([]);
  assert.equal(delay(b, 3, 0), 4000);
  assert.ok(delay(b, 3, 0.999999) <= 1);
  assert.equal(delay([1000, 30000, 2, 0], 3, 0.7), 4000);
  assert.equal(delay([1000, 30000, 2, 0.5], 3, 1), 2000);
  assert.equal(delay(b, 0, 0), 1000, 'attempt 0 waits like the first retry');
});

test('nonsense backoff settings are made safe', () => {
  assert.deepEqual(sanitize([-5, NaN, 0.5, 7]), [1000, 30000, 2, 1]);
  assert.deepEqual(sanitize([500, 100]), [500, 500, 2, 1]);
  assert.deepEqual(sanitize([100, 800, NaN]), [100, 800, 2, 1]);
});
