// Render in the browser only, as a single-page app (adapter-static's `fallback`).
//
// Why not server-side rendering or a prerendered shell: the todos live on the tidings server
// and change every second, so there is nothing worth baking into HTML at build time, and the
// client library is WebAssembly that starts in the browser anyway. With `ssr = false` the
// build is one `index.html` plus assets, which the Rocket server serves at `/` and for every
// client-side route (`/lists/groceries`) on reload.
export const ssr = false;
export const prerender = false;
