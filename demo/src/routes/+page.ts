import { redirect } from '@sveltejs/kit';
import { resolve } from '$app/paths';

// Every tidings server has an `inbox` list: start there.
export function load() {
	redirect(307, resolve('/lists/[list]', { list: 'inbox' }));
}
