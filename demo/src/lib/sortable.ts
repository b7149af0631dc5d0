import type { Attachment } from 'svelte/attachments';

/**
 * Ordering todos by hand: where a todo goes when it takes the place of the todo at index `to`
 * (a drop on it, or one step up or down), as `feed.move`'s `after`. Moving down, it goes
 * right after that todo; moving up, right after the one before it (`null`: first).
 */
export function afterFor(ids: readonly string[], from: number, to: number): string | null {
	return (from < to ? ids[to] : ids[to - 1]) ?? null;
}

/** The item an event happened in. */
const itemOf = (event: Event): HTMLElement | null =>
	(event.target as Element | null)?.closest<HTMLElement>('[data-todo-id]') ?? null;
const idOf = (event: Event): string | undefined => itemOf(event)?.dataset.todoId;

/**
 * Drag and drop (HTML5) over a list whose `draggable` items carry `data-todo-id`: a todo
 * dropped on another takes its place (`afterFor`), and `onmove` sends it. `ids` gives the
 * todos in the order shown at the moment of the drop. While a todo is dragged over another,
 * that one has `data-drop="before"` or `"after"`: where the dragged one would go.
 */
export function sortable(
	ids: () => readonly string[],
	onmove: (id: string, after: string | null) => void
): Attachment<HTMLElement> {
	return (list) => {
		let dragged: string | undefined;
		let marked: HTMLElement | null = null;
		const mark = (item: HTMLElement | null, where?: string) => {
			if (marked && marked !== item) delete marked.dataset.drop;
			marked = item;
			if (item && where) item.dataset.drop = where;
		};
		const start = (event: DragEvent) => {
			dragged = idOf(event);
			if (dragged && event.dataTransfer) {
				event.dataTransfer.effectAllowed = 'move';
				event.dataTransfer.setData('text/plain', dragged);
			}
		};
		// Saying "a drop is welcome here" is what dragover's default action prevents.
		const over = (event: DragEvent) => {
			const item = itemOf(event);
			const target = item?.dataset.todoId;
			if (!dragged || !item || !target) return;
			event.preventDefault();
			const shown = ids();
			const [from, to] = [shown.indexOf(dragged), shown.indexOf(target)];
			mark(item, from < to ? 'after' : from > to ? 'before' : undefined);
		};
		const drop = (event: DragEvent) => {
			const [id, target] = [dragged, idOf(event)];
			dragged = undefined;
			mark(null);
			if (!id || !target) return;
			event.preventDefault();
			const shown = ids();
			const [from, to] = [shown.indexOf(id), shown.indexOf(target)];
			if (from >= 0 && to >= 0 && from !== to) onmove(id, afterFor(shown, from, to));
		};
		const end = () => {
			dragged = undefined;
			mark(null);
		};
		const listeners = [
			['dragstart', start],
			['dragover', over],
			['drop', drop],
			['dragend', end]
		] as const;
		for (const [name, listener] of listeners) list.addEventListener(name, listener);
		return () => {
			for (const [name, listener] of listeners) list.removeEventListener(name, listener);
		};
	};
}
