// The client tests' way into a page (tests/client/page.html, whose `window.t` holds the
// package and the test helpers): run a function there and bring back its value or its failure.

/** Run `body(t, arg)` in the page; its failures fail the test with the page's message. */
export async function inPage(page, body, arg) {
  const result = await page.evaluate(
    async ([source, arg]) => {
      try {
        // eslint-disable-next-line no-new-func
        return { value: await new Function(`return (${source})`)()(window.t, arg) };
      } catch (error) {
        return { error: `${error.message}\n${error.stack ?? ''}` };
      }
    },
    [body.toString(), arg],
  );
  if (result.error) throw new Error(`in the page: ${result.error}`);
  return result.value;
}
