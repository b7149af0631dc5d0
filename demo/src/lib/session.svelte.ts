import type { AccessToken, List } from 'tidings-client';

/**
 * Who uses the demo. A tidings server either has no access control (everyone reads and
 * writes every list: `open`) or verifies the tokens an application signs (`auth`). A real
 * app has its own sign-in; this demo uses the server's development login
 * (`TIDINGS_AUTH_DEV_LOGIN=1`, which `make demo` sets): `POST /api/dev/token {user}` signs a
 * one-hour token for any name.
 *
 * These few requests are the app's sign-in, not tidings data: everything about lists and
 * todos still goes through the `tidings-client` package. The sign-in is kept in
 * `sessionStorage`, so each tab can be someone else (two tabs, two users: try sharing).
 */
type Mode = 'unknown' | 'open' | 'auth';

interface Stored {
	user: string;
	token: string;
	/** Seconds since the Unix epoch. */
	expires_at: number;
}

const KEY = 'tidings-demo-sign-in';
/** Fetch a new token when the one held expires within this many seconds. */
const EARLY_SECS = 60;

/** A failed request, with the server's own message when it sent its JSON error. */
async function failure(response: Response, fallback: string): Promise<Error> {
	const body = await response.json().catch(() => null);
	const message: unknown = body?.error?.message;
	return new Error(typeof message === 'string' ? message : `${fallback} (HTTP ${response.status})`);
}

function stored(): Stored | null {
	try {
		const value = JSON.parse(sessionStorage.getItem(KEY) ?? 'null');
		return typeof value?.user === 'string' && typeof value?.token === 'string' ? value : null;
	} catch {
		return null;
	}
}

class Session {
	/** Whether the server checks tokens (`unknown` until `detect` answered). */
	mode = $state<Mode>('unknown');
	/** The signed-in user (with access control). */
	user = $state<string | null>(stored()?.user ?? null);

	/** Ask the server whether it checks tokens: `GET /api/lists` without one answers 200 or
	 * 401 (which the browser logs). Someone signed in in this tab already knows: a token
	 * the server no longer takes (it restarted with another secret) is renewed by the feeds'
	 * token function, and a server without access control ignores it. */
	async detect(): Promise<void> {
		if (this.user !== null) {
			this.mode = 'auth';
			return;
		}
		const response = await fetch('/api/lists');
		if (response.status === 401) this.mode = 'auth';
		else if (response.ok) this.mode = 'open';
		else throw await failure(response, 'The server did not answer');
	}

	/** Whether the app may show lists: no access control, or someone signed in. */
	get ready(): boolean {
		return this.mode === 'open' || (this.mode === 'auth' && this.user !== null);
	}

	async signIn(user: string): Promise<void> {
		const held = await this.#fetchToken(user);
		this.user = held.user;
	}

	signOut(): void {
		sessionStorage.removeItem(KEY);
		this.user = null;
	}

	/** The feeds' `accessToken`: the held token, or a new one when it is about to expire or
	 * the server refused it (`refresh`). Undefined without access control. */
	get accessToken(): AccessToken | undefined {
		return this.mode === 'auth' ? this.#token : undefined;
	}

	#token = async ({ refresh }: { refresh: boolean }): Promise<string> => {
		const held = stored();
		if (!held || held.user !== this.user) throw new Error('signed out');
		if (!refresh && held.expires_at - Date.now() / 1000 > EARLY_SECS) return held.token;
		return (await this.#fetchToken(held.user)).token;
	};

	async #fetchToken(user: string): Promise<Stored> {
		const response = await fetch('/api/dev/token', {
			method: 'POST',
			headers: { 'content-type': 'application/json' },
			body: JSON.stringify({ user })
		});
		if (response.status === 404) {
			throw new Error(
				'This server checks access tokens but has no development login: start it with TIDINGS_AUTH_DEV_LOGIN=1.'
			);
		}
		if (!response.ok) throw await failure(response, 'Could not sign in');
		const { token, expires_at } = await response.json();
		const held: Stored = { user, token, expires_at };
		sessionStorage.setItem(KEY, JSON.stringify(held));
		return held;
	}

	/** The list to start on: the `inbox` every open server has, or the signed-in user's own
	 * Inbox (the server makes it on their first visit), or their first list. */
	async home(): Promise<string> {
		if (this.mode !== 'auth') return 'inbox';
		const get = (refresh: boolean) =>
			this.#token({ refresh }).then((token) =>
				fetch('/api/lists', { headers: { authorization: `Bearer ${token}` } })
			);
		let response = await get(false);
		// As the feeds do: a token the server no longer takes is renewed once.
		if (response.status === 401) response = await get(true);
		if (!response.ok) throw await failure(response, 'Could not load the lists');
		const { lists } = (await response.json()) as { lists: List[] };
		const own = lists.find((list) => list.role === 'owner' && list.title === 'Inbox');
		return (own ?? lists[0])?.id ?? 'inbox';
	}
}

/** The demo's one session. */
export const session = new Session();
