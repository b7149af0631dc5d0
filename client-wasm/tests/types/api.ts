// Uses the whole public API as an application would. `tsc --noEmit --strict` must accept it,
// and every `@ts-expect-error` must really be an error: that proves the types are precise
// (with `any`, those lines would compile and the check would fail).
import init, {
  EventStream,
  TodoFeed,
  type AccessToken,
  type ConnectionRole,
  type ConnectionState,
  type ConnectionStatus,
  type FeedOptions,
  type List,
  type ListRole,
  type Member,
  type MemberRole,
  type MoveTo,
  type PendingWrite,
  type Presence,
  type Readable,
  type RejectedWrite,
  type Rejections,
  type ResyncReason,
  type TidingsError,
  type Todo,
  type TodoEvent,
  type TodosSnapshot,
  type WriteKind,
  type wire,
} from 'tidings-client';

export async function main(initial: TodosSnapshot): Promise<void> {
  await init();
  const options: FeedOptions = {
    lists: ['inbox'],
    initial,
    backoff: { initialMs: 500, maxMs: 10_000 }, // partial objects are fine
    heartbeatTimeoutMs: 40_000,
    withCredentials: false,
    accessToken: 'token',
    headers: { 'x-app': 'demo' },
    shareConnection: true,
  };
  const feed = new TodoFeed('http://127.0.0.1:8000', options);
  const { todos, status, events, lists } = feed;

  const stop: () => void = todos.subscribe((items: readonly Todo[]) => {
    const titles: string[] = items.map((t) => t.title);
    const done: boolean = items.every((t) => t.done);
    void titles, done;
  });
  status.subscribe((s: ConnectionStatus) => {
    const role: ConnectionRole = s.role;
    void role;
    const state: ConnectionState = s.state;
    const attempt: number = s.attempt;
    const last: string | null = s.lastEventId;
    const code: string | undefined = s.error?.code;
    void state, attempt, last, code;
  });
  events.subscribe((e: TodoEvent | null) => {
    if (e === null) return;
    switch (e.type) {
      case 'todo_created':
      case 'todo_updated':
        void e.todo.list_id;
        break;
      case 'todo_deleted':
        void e.id;
        break;
      case 'list_created':
      case 'list_updated':
        void e.list.title;
        break;
      case 'list_shared': {
        const role: 'viewer' | 'editor' | 'owner' = e.role;
        void role, e.list.id;
        break;
      }
      case 'list_deleted':
      case 'list_unshared':
        void e.list_id;
        break;
      default: {
        const never: never = e; // the union is exhaustive
        void never;
      }
    }
  });
  const allLists: readonly List[] = lists.get();
  const roles: (ListRole | undefined)[] = allLists.map((l) => l.role);
  void roles;

  // Tokens: a string, or a function (sync or async) told when the last one was refused.
  const fixed: AccessToken = 'token';
  const fromApp: AccessToken = async ({ refresh }) => (refresh ? 'new' : 'cached');
  const sync: AccessToken = () => 'token';
  new TodoFeed('', { accessToken: fromApp }).close();
  new EventStream('/api/events', { accessToken: sync }).close();
  void fixed;

  // Sharing (owner only) and deleting a list.
  const members: readonly Member[] = await feed.members('work');
  const first: string | undefined = members[0]?.user;
  const role: ListRole | undefined = members[0]?.role;
  void first, role;
  const added: Member = await feed.addMember('work', 'bob', 'viewer');
  const asEditor: MemberRole = 'editor';
  await feed.addMember('work', added.user, asEditor);
  await feed.removeMember('work', 'bob');
  await feed.deleteList('work');
  const reason: ResyncReason = 'epoch';
  void reason;

  const todo: Todo = await feed.create('Buy milk');
  await feed.create('Call mum', { list: 'inbox', id: crypto.randomUUID() });
  const updated: Todo = await feed.update(todo.id, { done: true, title: 'Buy oat milk' });
  await feed.update(updated.id, { list_id: 'work' });
  await feed.remove(todo.id);
  const list: List = await feed.createList('Work', 'work');
  const renamed: List = await feed.renameList(list.id, 'Work, renamed');
  void renamed;

  // Order by hand: after a todo, first, or into another list (at its end).
  const moved: Todo = await feed.move(todo.id, { after: updated.id });
  const toTop: MoveTo = { after: null };
  await feed.move(moved.id, toTop);
  await feed.move(moved.id, { list: 'work' });
  const position: string = moved.position;
  void position;
  const cleared: number = await feed.clearCompleted('inbox');
  void cleared;
  await feed.leaveList('shared-with-me');
  try {
    await feed.create('');
  } catch (error) {
    const e = error as TidingsError;
    void [e.code, e.message, e.status];
  }
  const lastId: number = feed.lastEventId;
  void lastId;

  // Instant and offline writes: pending marks, the count waiting, the refusals.
  const unconfirmed: boolean = todos.get().some((t) => t.pending === true);
  const waiting: Readable<number> = feed.pending;
  const rejected: Rejections = feed.rejected;
  rejected.subscribe((all: readonly RejectedWrite[]) => {
    for (const { write, error } of all) {
      const w: PendingWrite = write;
      const kind: WriteKind = w.kind;
      const at: number = w.at;
      const key: string = w.key;
      const target: string | undefined = w.id ?? w.list;
      void [kind, at, key, target, error.code, error.message, error.status];
    }
  });
  rejected.clear();
  const offline: ConnectionState = 'offline';
  void unconfirmed, waiting, offline;

  // Who has each list open, by list id.
  feed.presence.subscribe((all: Readonly<Record<string, Presence>>) => {
    const here: Presence | undefined = all['work'];
    const names: readonly string[] = here?.users ?? [];
    const streams: number = here?.anonymous ?? 0;
    void names, streams;
  });

  // React: useSyncExternalStore(store.subscribe, store.get)
  const store: Readable<readonly Todo[]> = todos;
  const snapshot: readonly Todo[] = store.get();
  void snapshot;

  const es = new EventStream('http://127.0.0.1:8000/api/events?list=inbox', { heartbeatTimeoutMs: 30_000 });
  const created: Readable<unknown> = es.select('todo_created');
  created.subscribe((data) => void data);
  es.status.subscribe((s) => void s.state);
  const esLast: string | undefined = es.lastEventId;
  void esLast;

  // @ts-expect-error: a todos subscriber receives Todo[], not a number
  todos.subscribe((n: number) => void n);
  // @ts-expect-error: states are a closed set
  const bad: ConnectionState = 'opening';
  void bad;
  // @ts-expect-error: so are roles
  const badRole: ConnectionRole = 'boss';
  void badRole;
  // Control messages carry their wire name as `type`, as the server sends it.
  const tags: [wire.Connected['type'], wire.Resync['type'], wire.Presence['type']] = ['connected', 'resync', 'presence'];
  void tags;
  // @ts-expect-error: not the TypeScript name of the type
  const misnamed: wire.Presence['type'] = 'Presence';
  void misnamed;
  // @ts-expect-error: an unknown event type is not a TodoEvent
  const wrong: TodoEvent = { type: 'todo_exploded', id: 'x' };
  void wrong;
  // @ts-expect-error: store values are frozen, and typed so
  snapshot[0].done = true;
  // @ts-expect-error: patches only name known fields with their types
  await feed.update(todo.id, { done: 'yes' });
  // @ts-expect-error: `lists` is an array of ids
  new TodoFeed('', { lists: 'inbox' });
  // @ts-expect-error: a list has one owner: members are viewers or editors
  await feed.addMember('work', 'bob', 'owner');
  // @ts-expect-error: roles are a closed set
  const admin: ListRole = 'admin';
  void admin;
  // @ts-expect-error: a token function gives a string
  new TodoFeed('', { accessToken: () => 42 });
  // @ts-expect-error: members are frozen
  members[0]!.role = 'editor';
  // @ts-expect-error: and so is presence
  feed.presence.get()['work']!.users.push('eve');
  // @ts-expect-error: write kinds are the methods that write
  const read: WriteKind = 'members';
  void read;
  // @ts-expect-error: a move says where: after a todo's id (or null), not an index
  await feed.move(todo.id, { after: 2 });
  // @ts-expect-error: `pending` is only ever `true` (or absent)
  const notPending: Todo = { ...todo, pending: false };
  void notPending;
  // @ts-expect-error: the refusals are read-only (clear() empties them)
  rejected.set([]);

  stop();
  es.close();
  feed.close();
}
