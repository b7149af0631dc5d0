/** What to tell the user about a failure. The library rejects with a `TidingsError`, an
 * `Error` whose `message` is the server's own (`title must not be empty`) when it answered. */
export function messageOf(error: unknown): string {
	return error instanceof Error ? error.message : String(error);
}
