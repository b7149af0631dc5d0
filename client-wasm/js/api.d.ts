// The package's public declarations: what `import … from 'tidings-client'` gives, beside the
// scripts that implement it (`bind` in feed.js returns these classes; `tsc -p js` checks the
// scripts against this file). scripts/build-pkg.sh appends it to the declarations
// wasm-bindgen writes (`init`, `liveResources`, and the `wire` namespace that build.rs
// generates from the protocol crate), which is why the `wire` import below is dropped there.
import type { wire } from './wire.js';

/** `T` with every property, element and nested value `readonly`: what `Object.freeze`d
 * store values are. */
export type Frozen<T> = T extends object ? { readonly [K in keyof T]: Frozen<T[K]> } : T;

/** A todo, as the server sends it. Values from the stores are frozen, hence `readonly`. */
export type Todo = Frozen<wire.Todo> & {
  /** `true` while a write of this browser changed it and the server has not confirmed it
   * yet (absent once the stream has applied the write). */
  readonly pending?: true;
};

/** A todo list. `id` is a slug such as `inbox`. With access control, `role` is what the
 * signed-in user may do with it. */
export type List = Frozen<wire.List> & {
  /** `true` while this browser's `createList` or `renameList` is not confirmed yet. */
  readonly pending?: true;
};

/** What a user may do with a list: `viewer` reads, `editor` also changes its todos, `owner`
 * (its creator) also shares and deletes it. */
export type ListRole = wire.Role;

/** The roles a list can be shared with (a list has one owner). */
export type MemberRole = Exclude<ListRole, 'owner'>;

/** A user who may read a list, and their role. */
export type Member = Frozen<wire.Member>;

/** Why a stream asked for a refetch (`resync`): `pruned`, `ahead` or `epoch`. */
export type ResyncReason = wire.ResyncReason;

/** A change, as delivered on the stream (the `type` is the SSE event name). */
export type TodoEvent = Frozen<wire.TodoEvent>;

/** What `GET /api/lists/<list>/todos` returns; pass it as `initial` to start from it. */
export type TodosSnapshot = Frozen<wire.TodosSnapshot>;

/** Who has a list open (`feed.presence`): with access control, `users` are the users (their
 * token's `sub`) with a stream open on it, sorted, each once, and `anonymous` is 0; without
 * it, `users` is empty and `anonymous` counts the open streams. A stream of every list counts
 * on none. */
export type Presence = Frozen<Pick<wire.Presence, 'users' | 'anonymous'>>;

/** `feed.update`'s changes: rename, toggle, move (`list_id`). */
export type TodoPatch = wire.TodoPatch;

/** `offline`: the browser says it is offline (`navigator.onLine`); writes wait in the
 * outbox, and the stream reopens at once when it is back. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'offline' | 'closed';

/** How this tab gets its events: `'leader'` holds the connection shared by the tabs of this
 * origin that follow the same server and lists, and relays every event to them;
 * `'follower'` applies what the leader relays (its `state` is the leader's connection);
 * `'own'` has a connection of its own (`shareConnection: false`, or Web Locks or
 * `BroadcastChannel` missing). */
export type ConnectionRole = 'leader' | 'follower' | 'own';

/** An error: rejected promises and `ConnectionStatus.error` carry this shape. */
export interface TidingsError extends Error {
  /** Stable code: the server's (`invalid_title`, `not_found`, `unauthorized`,
   * `forbidden`, …) or the client's (`network_error`, `decode_error`, `heartbeat_timeout`,
   * `stopped_by_server`, `list_deleted`, `list_unshared`, …). */
  code: string;
  /** HTTP status, when the server answered. */
  status?: number;
  /** Seconds the server asked to wait before trying again (`Retry-After`), when it did. */
  retryAfter?: number;
}

export interface ConnectionStatus {
  state: ConnectionState;
  /** Failed attempts since the last stable connection. */
  attempt: number;
  /** The id up to which every change has been applied: where a reconnect resumes. */
  lastEventId: string | null;
  /** Whether this tab leads, follows or has its own connection. */
  role: ConnectionRole;
  /** The latest problem; cleared by a successful connection. */
  error?: TidingsError;
}

/** The Svelte store contract (`$store` works), plus `get()` for React's
 * `useSyncExternalStore(store.subscribe, store.get)`. */
export interface Readable<T> {
  subscribe(run: (value: T) => void): () => void;
  get(): T;
}

export interface BackoffOptions {
  /** Ceiling of the first retry delay (default 1000). */
  initialMs: number;
  /** Largest delay (default 30000). */
  maxMs: number;
  /** Growth per attempt (default 2). */
  factor: number;
  /** Random share of each delay, 0..1 (default 1: full jitter). */
  jitter: number;
}

/** A token, or a function called for one before each connect and each REST call;
 * `refresh` is `true` right after the server refused the last token (401). */
export type AccessToken = string | ((request: { refresh: boolean }) => string | Promise<string>);

export interface StreamOptions {
  backoff?: Partial<BackoffOptions>;
  /** Silence after which the connection is treated as dead and reopened. */
  heartbeatTimeoutMs?: number;
  /** Send cookies cross-origin. */
  withCredentials?: boolean;
  /** On a tidings stream, traded for a one-time stream ticket before each connect (`POST
   * /api/events/ticket`), so no token is ever in a URL; on another SSE endpoint (or a server
   * without tickets) sent as the `access_token` query parameter (EventSource cannot send
   * headers). `Authorization: Bearer` on REST calls. */
  accessToken?: AccessToken;
}

export interface FeedOptions extends StreamOptions {
  /** Lists to follow (default: every list). */
  lists?: string[];
  /** A snapshot already loaded (e.g. by SvelteKit's `load`): shown at once, and the stream
   * resumes at its `last_event_id`. */
  initial?: TodosSnapshot;
  /** Extra headers for the REST calls. */
  headers?: Record<string, string>;
  /** Share one stream with the other tabs of this origin that follow the same server and
   * lists (default `true`): one tab leads and relays, REST stays in each tab. */
  shareConnection?: boolean;
}

export interface CreateOptions {
  /** The list (default: the first followed list, or `inbox`). */
  list?: string;
  /** A UUID of your choice; by default one is generated, so a retried create is idempotent. */
  id?: string;
}

/** Where `feed.move` puts a todo. */
export interface MoveTo {
  /** Right after this todo of the target list; `null`: first. Absent (only with `list`):
   * last. */
  after?: string | null;
  /** Into this list (default: the todo's own). */
  list?: string;
}

/** Which `TodoFeed` method made a write. */
export type WriteKind =
  | 'create'
  | 'update'
  | 'remove'
  | 'move'
  | 'createList'
  | 'renameList'
  | 'deleteList'
  | 'leaveList'
  | 'clearCompleted'
  | 'addMember'
  | 'removeMember';

/** A write of this browser the server does not have yet (or refused: `feed.rejected`). */
export interface PendingWrite {
  /** The method that made it. */
  readonly kind: WriteKind;
  /** Its `Idempotency-Key`: a resend is applied once. */
  readonly key: string;
  /** The todo (`create`, `update`, `remove`, `move`). */
  readonly id?: string;
  /** The list (`create` and the list and member writes). */
  readonly list?: string;
  /** The member (`addMember`, `removeMember`). */
  readonly user?: string;
  /** The request's JSON body (the title, the patch, the role; `move`: `{after, list_id}`). */
  readonly body?: unknown;
  /** When it was made, milliseconds since the Unix epoch. */
  readonly at: number;
}

/** A write the server refused for good (a 4xx other than 408 and 429), and why. Its
 * optimistic change has been rolled back. */
export interface RejectedWrite {
  readonly write: PendingWrite;
  readonly error: TidingsError;
}

/** `feed.rejected`: the writes refused since the last `clear()`, oldest first. */
export interface Rejections extends Readable<readonly RejectedWrite[]> {
  /** Forget them (after showing them to the user). */
  clear(): void;
}

/** The live todos of one or more lists, with REST helpers. Stores open the stream when the
 * first subscriber arrives and close it a second after the last one leaves. */
export class TodoFeed {
  /** `baseUrl` is the server (`""`: this page's origin). Throws a `TidingsError`
   * (`invalid_input`) for unusable options. */
  constructor(baseUrl: string, options?: FeedOptions | null);
  /** The todos of the followed lists, in server order. */
  readonly todos: Readable<readonly Todo[]>;
  /** Every list, oldest first (with access control: the user's, each with its `role`). */
  readonly lists: Readable<readonly List[]>;
  /** The connection status. */
  readonly status: Readable<ConnectionStatus>;
  /** The last change applied (`null` before the first). */
  readonly events: Readable<TodoEvent | null>;
  /** The id of the last change applied. */
  readonly lastEventId: number;
  /** How many of this user's writes (from any tab of this browser) the server does not have
   * yet. */
  readonly pending: Readable<number>;
  /** The writes the server refused for good, in every tab of this user, even when the
   * promise that made them is gone (a write made offline, refused after a reload). */
  readonly rejected: Rejections;
  /** Who has each list open, by list id: the latest the server told (of the followed lists;
   * a feed of every list: of those the user reads), kept while disconnected until the next
   * replaces it. E.g. `$presence['work']?.users` is `['alice', 'bob']`. */
  readonly presence: Readable<Readonly<Record<string, Presence>>>;
  /** Create a todo. Every write (this one and the others below) shows in the stores at once
   * (`pending: true`), waits in the outbox (IndexedDB) until the server has it, is retried
   * on network failures, 5xx, 408 and 429 for as long as it takes, with one idempotency key,
   * and is rolled back when refused. Resolves with the server's todo; rejects with a
   * `TidingsError` (`{code, message, status}`) when refused, also reported in `rejected`;
   * `closed` after `close()`. */
  create(title: string, options?: CreateOptions | null): Promise<Todo>;
  /** Rename, toggle or move a todo. Resolves with the updated todo. */
  update(id: string, patch: TodoPatch): Promise<Todo>;
  /** Delete a todo. */
  remove(id: string): Promise<void>;
  /** Put a todo right after another (`{after: id}`), first (`{after: null}`), or into
   * another list (`{list}`: at its end, or where `after` says). Shown at once at its new
   * place; the server gives it a new `position`. Resolves with the moved todo; refused with
   * `invalid_after` (422) when `after` is not in the target list. */
  move(id: string, to: MoveTo): Promise<Todo>;
  /** Delete a list's done todos (editors and owner). Resolves with how many the server
   * deleted. */
  clearCompleted(list: string): Promise<number>;
  /** Create a list (`id` defaults to a slug of the title; pass one to add todos to the list
   * before the server has it). Resolves with the list. */
  createList(title: string, id?: string | null): Promise<List>;
  /** Rename a list (with access control: its owner and editors). Resolves with the list. */
  renameList(list: string, title: string): Promise<List>;
  /** Delete a list and its todos (with access control: its owner only). Every feed of it
   * stops with `list_deleted`. */
  deleteList(list: string): Promise<void>;
  /** Leave a list shared with this user (access control; an owner cannot: `409`
   * `owner_cannot_leave`). It goes from the stores with its todos; the user's feeds of it
   * stop with `list_unshared`. The user is the access token's (its JWT's `sub`). */
  leaveList(list: string): Promise<void>;
  /** The members of a list, its owner first (owner only). */
  members(list: string): Promise<readonly Member[]>;
  /** Share a list with `user` as a `viewer` or `editor`, or give them that role (owner
   * only). Resolves with the member. */
  addMember(list: string, user: string, role: MemberRole): Promise<Member>;
  /** Stop sharing a list with `user` (owner only): their feeds of it stop with
   * `list_unshared`. */
  removeMember(list: string, user: string): Promise<void>;
  /** Close for good: the stream, every listener and timer, any pending retry. Stores keep
   * their last value. Writes not sent yet stay in the outbox: another tab of this user, or
   * the next page, sends them; their promises here never settle. */
  close(): void;
  /** Free the feed's memory in the module now (it is freed when garbage-collected too). */
  free(): void;
  [Symbol.dispose](): void;
}

/** Any Server-Sent Events endpoint, with the same reconnection, as stores of parsed JSON per
 * event name. */
export class EventStream {
  constructor(url: string, options?: StreamOptions | null);
  /** The parsed JSON data of the latest event named `name` (`null` before the first). */
  select(name: string): Readable<unknown>;
  /** The connection status. */
  readonly status: Readable<ConnectionStatus>;
  /** The last event id received. */
  readonly lastEventId: string | undefined;
  /** Close for good. */
  close(): void;
}
