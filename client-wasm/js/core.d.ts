// `FeedCore` (src/feed.rs), the Rust core of `TodoFeed`, as feed.js sees it. wasm-bindgen
// writes no declaration for it (`skip_typescript`: it is not the package's API), so this is
// by hand, beside the script that uses it; src/feed.rs documents each method.
import type { ConnectionRole, List, Todo } from './api.js';
import type { Status } from './connection.js';

/** What `FeedCore.start`'s hook hears: a `HOOK_` code, then for `HOOK_CHANGE` the effect's
 * `EFFECT_` bits and the change (codes.js). */
export type Hook = (what: number, effect: number, event: any) => void;

export class FeedCore {
  constructor(
    base: string,
    lists: string[] | undefined,
    withCredentials: boolean,
    accessToken: unknown,
    backoff: number[],
    heartbeatTimeoutMs: number | undefined,
    share: boolean,
  );
  snapshot(todos: unknown, lists: unknown, what: string): boolean;
  setLists(lists: unknown): boolean;
  /** An `OP_` code (codes.js); answers a number. */
  op(code: number): number;
  start(hook: Hook): void;
  todos(): readonly Todo[];
  lists(): readonly List[];
  /** The status without the snapshot load's part, not frozen. */
  status(): Status & { lastEventId: string | null; role: ConnectionRole };
  free(): void;
}
