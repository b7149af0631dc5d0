import type { List, RejectedWrite, Todo } from 'tidings-client';

/** What to tell the user about a failure. The library rejects with a `TidingsError`, an
 * `Error` whose `message` is the server's own (`title must not be empty`) when it answered. */
export function messageOf(error: unknown): string {
	return error instanceof Error ? error.message : String(error);
}

/** What to tell the user about a write the server refused for good (`feed.rejected`): which
 * change, by the todo's or list's title where the page still knows it, and the server's
 * reason. Its change has already been rolled back. */
export function describeRefusal(
	{ write, error }: RejectedWrite,
	todos: readonly Todo[],
	lists: readonly List[]
): string {
	const todo = `“${todos.find((t) => t.id === write.id)?.title ?? 'a todo'}”`;
	const body = (write.body ?? {}) as { title?: unknown; list_id?: unknown };
	const list = `“${lists.find((l) => l.id === write.list)?.title ?? write.list}”`;
	const what = {
		create: 'add the todo',
		update: `${body.list_id ? 'move' : body.title !== undefined ? 'rename' : 'update'} ${todo}`,
		remove: `delete ${todo}`,
		move: `move ${todo}`,
		createList: 'create the list',
		renameList: `rename ${list}`,
		deleteList: `delete ${list}`,
		leaveList: `leave ${list}`,
		clearCompleted: `clear the completed todos of ${list}`,
		addMember: `share “${write.list}”`,
		removeMember: `stop sharing “${write.list}”`
	}[write.kind];
	return `Could not ${what}: ${error.message}`;
}
