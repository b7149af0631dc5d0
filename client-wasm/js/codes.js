// @ts-check
// Generated from src/codes.rs (TIDINGS_BLESS=1 cargo test -p tidings-client codes): do not
// edit. The codes the scripts and Rust exchange; src/codes.rs says why they are codes.

// What a `TodoFeed` asks of `FeedCore.op` (one entry point for six small calls: each
// export costs the package glue of its own). It answers 0 but where said.
/** A snapshot is being loaded: changes that arrive meanwhile wait for it. */
export const OP_BEGIN_LOAD = 0;
/**
 * Start the session at the last snapshot's id: it applies what arrived while loading
 * (through the hook), then streams.
 */
export const OP_INSTALL = 1;
/** Whether a snapshot is awaited: 1 or 0. */
export const OP_IS_LOADING = 2;
/** The id up to which every change has been applied (-1: none yet). */
export const OP_CURSOR = 3;
/** Disconnect, not for good (the cursor stays), and forget the hook. */
export const OP_STOP = 4;
/** Disconnect for good. */
export const OP_CLOSE = 5;

// What a `FeedCore`'s hook hears: its first argument.
/** `(CHANGE, effect, event)`: a change was applied; `effect` holds `EFFECT_` bits. */
export const HOOK_CHANGE = 0;
/** The changes since the snapshot cannot be had: load a snapshot again. */
export const HOOK_RESYNC = 1;
/** The status changed. */
export const HOOK_STATUS = 2;
/** `(PRESENCE, 0, presence)`: who is on a list now (the `presence` message, parsed). */
export const HOOK_PRESENCE = 3;

// What a change did to a feed's replica: bits of the hook's `effect`.
/** The todos changed. */
export const EFFECT_TODOS = 1;
/** The lists changed. */
export const EFFECT_LISTS = 2;

// The tab relay's messages (`js/relay.js`), by their `t`: on the `BroadcastChannel`
// between tabs, and from the relay to Rust (`FRAME`, each frame of a `REPLAY`, `STATUS`,
// `RELOAD`, `PRESENCE`, `LEAD`, `ALONE`).
/** `{prev, id, name, data}`: a change the leader applied; `prev` was its cursor before. */
export const RELAY_FRAME = 'f';
/**
 * `{at, s, h}`: the leader's cursor, connection status and `document.hidden`, on
 * every change and in answer to a ping.
 */
export const RELAY_STATUS = 's';
/** A follower heard nothing for a while: is the leader alive? */
export const RELAY_PING = 'p';
/** `{from, by}`: follower `by` lacks what came after id `from`. */
export const RELAY_NEED = 'n';
/**
 * `{to, frames}`: the leader's answer to a `NEED`: the frames after `from` from its
 * ring.
 */
export const RELAY_REPLAY = 'r';
/**
 * `{to?}`: reload your snapshot: to the tab that asked when the ring does not reach
 * back, to every tab on `resync`.
 */
export const RELAY_RELOAD = 'x';
/**
 * `{data, to?}`: a `presence` message the leader's stream received (its JSON data,
 * as received), or one it kept, for the tab that said `HELLO`.
 */
export const RELAY_PRESENCE = 'w';
/**
 * `{by}`: tab `by` joined: the leader sends it the presence it knows (the stream
 * tells only changes of it).
 */
export const RELAY_HELLO = 'h';
/** `{on}`, to Rust only: this tab now leads, or no longer. */
export const RELAY_LEAD = 'l';
/**
 * To Rust only: the relay cannot join (the `accessToken` function gave no token, so
 * there is no user to share as): connect alone.
 */
export const RELAY_ALONE = 'o';
