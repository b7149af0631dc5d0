// HS256 JSON Web Tokens for tests, signed the way an application signs them for tidings
// (`TIDINGS_AUTH_SECRET`): `sub` and `exp` (seconds) required.
import { createHmac } from 'node:crypto';

const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A token with `claims` (`sub`, `exp`, anything else), signed with `secret`. */
export function sign(claims, secret) {
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

/** Seconds since the Unix epoch. */
export const now = () => Math.floor(Date.now() / 1000);
