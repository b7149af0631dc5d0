/**
 * The text field of a "new …" form. Submitting clears it at once, so the next title can be
 * typed while this one is sent; if `send` resolves `false` (the server refused it), the text
 * comes back to be fixed, unless something new was typed meanwhile.
 */
export class TitleField {
	value = $state('');
	readonly #send: (title: string) => Promise<boolean>;

	/** `send` is called with the trimmed title; it resolves `false` when the title was refused. */
	constructor(send: (title: string) => Promise<boolean>) {
		this.#send = send;
	}

	submit = async (event: SubmitEvent) => {
		event.preventDefault();
		const text = this.value.trim();
		if (!text) return;
		this.value = '';
		if (!(await this.#send(text)) && this.value === '') this.value = text;
	};
}
