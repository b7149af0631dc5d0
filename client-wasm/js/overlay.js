// @ts-check
// The optimistic view: a feed's todos and lists as the server will have them once it has
// every pending write of the outbox, applied in order over what the stream has applied. A
// todo or list a pending write changed carries `pending: true`. Recomputed whenever either
// side changes, so a new snapshot (a resync, a reload) gets the pending writes again.
/** @import * as api from './api.js' */
/** @import { Entry } from './outbox.js' */

/**
 * The id the server gives a list created without one (its `slugify`, but for the number it
 * appends when the slug is taken): the optimistic list's id until the server answers.
 * @param {string} title
 */
export const slug = (title) =>
  title
    .normalize('NFC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M}]+/gu, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 53) || 'list';

/**
 * Where a moved todo goes in `todos` (which no longer holds it), in display order: right
 * after `after`; before the list's first todo (`null`); after its last (`undefined`: a move
 * to another list). Where it was (`at`) when there is no such place: the server decides.
 * @param {api.Todo[]} todos
 * @param {string} list
 * @param {string | null | undefined} after
 * @param {number} at
 */
const place = (todos, list, after, at) => {
  if (after) {
    const i = todos.findIndex((t) => t.id === after);
    return i < 0 ? at : i + 1;
  }
  const mine = todos.flatMap((t, i) => (t.list_id === list ? [i] : []));
  if (!mine.length) return at;
  return after === null ? mine[0] : mine[mine.length - 1] + 1;
};

/**
 * `base` with the writes applied.
 * @param {readonly api.Todo[]} base what the stream has applied
 * @param {Entry[]} writes the outbox's, in order
 * @param {(list: string) => boolean} follows whether the feed shows a list's todos
 * @returns {readonly api.Todo[]}
 */
export function overlayTodos(base, writes, follows) {
  if (!writes.length) return base;
  /** @type {api.Todo[]} */
  let todos = base.slice();
  for (const w of writes) {
    const at = todos.findIndex((t) => t.id === w.id);
    const old = todos[at];
    const body = /** @type {any} */ (w.body);
    if (w.kind === 'create' && follows(/** @type {string} */ (w.list))) {
      const todo = old ?? {
        id: /** @type {string} */ (w.id),
        list_id: /** @type {string} */ (w.list),
        title: String(body.title).trim(),
        done: false,
        created_at: w.at,
        updated_at: w.at,
      };
      // A new one goes to the end of its list: todos are grouped by list, then by position.
      // (JS compares UTF-16 units, the server bytes: they differ only past U+FFFF, which a
      // list id hardly holds; the confirmed todo takes its exact place.)
      let i = at;
      if (i < 0) {
        i = todos.length;
        while (i > 0 && todos[i - 1].list_id > todo.list_id) i--;
        todos.splice(i, 0, todo);
      }
      todos[i] = Object.freeze({ ...todo, pending: true });
    } else if (w.kind === 'update' && old) {
      const todo = { ...old, ...body, pending: true };
      if (typeof body.title === 'string') todo.title = body.title.trim();
      if (follows(todo.list_id)) todos[at] = Object.freeze(todo);
      else todos.splice(at, 1);
    } else if (w.kind === 'move' && old) {
      todos.splice(at, 1);
      const list = body.list_id ?? old.list_id;
      if (follows(list)) todos.splice(place(todos, list, body.after, at), 0, Object.freeze({ ...old, list_id: list, pending: true }));
    } else if (w.kind === 'remove' && old) {
      todos.splice(at, 1);
    } else if (w.kind === 'deleteList' || w.kind === 'leaveList') {
      todos = todos.filter((t) => t.list_id !== w.list);
    } else if (w.kind === 'clearCompleted') {
      todos = todos.filter((t) => t.list_id !== w.list || !t.done);
    }
  }
  return Object.freeze(todos);
}

/**
 * `base` with the lists the writes create and delete.
 * @param {readonly api.List[]} base
 * @param {Entry[]} writes
 * @returns {readonly api.List[]}
 */
export function overlayLists(base, writes) {
  let lists = base;
  for (const w of writes) {
    const id = /** @type {string} */ (w.list);
    if (w.kind === 'createList' && !lists.some((l) => l.id === id)) {
      const title = /** @type {{title: string}} */ (w.body).title.trim();
      lists = [...lists, Object.freeze({ id, title, created_at: w.at, pending: /** @type {const} */ (true) })];
    } else if (w.kind === 'renameList') {
      const title = /** @type {{title: string}} */ (w.body).title.trim();
      lists = lists.map((l) => (l.id === id ? Object.freeze({ ...l, title, pending: /** @type {const} */ (true) }) : l));
    } else if (w.kind === 'deleteList' || w.kind === 'leaveList') {
      lists = lists.filter((l) => l.id !== id);
    }
  }
  return lists === base ? base : Object.freeze(lists);
}
