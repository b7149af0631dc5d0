import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

// `npm run dev` talks to a tidings server on its default address (`make server`, or
// `cargo run -p tidings-server`). Proxying keeps the app and the API on one origin, as in
// production where the server serves `build/` itself.
const api = 'http://127.0.0.1:8000';

export default defineConfig({
	plugins: [sveltekit()],
	server: {
		proxy: {
			'/api': { target: api, changeOrigin: true },
			'/health': { target: api, changeOrigin: true }
		},
		// `tidings-client` is a symlink to ../pkg: let the dev server read its .wasm file.
		fs: { allow: ['..'] }
	}
});
