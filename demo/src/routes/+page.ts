import { redirect } from '@sveltejs/kit';

// Every tidings server has an `inbox` list: start there.
export function load() {
	redirect(307, '/lists/inbox');
}
