//! The codes Rust and the scripts (`js/`) exchange, named once. `js/codes.js` declares the
//! same constants for the scripts (`OP_INSTALL` for [`op::INSTALL`], …); it is generated
//! from this file, and a test fails while the file on disk differs from what this file
//! generates (`TIDINGS_BLESS=1 cargo test -p tidings-client codes` rewrites it).
//!
//! Numbers and one-letter strings rather than names: a code costs the package a byte or two
//! where a name would cost its length in the module and in the script (README "Package
//! size"); the names are here and in `js/codes.js`, which the build minifies away.

// `js/relay.js` imports `js/codes.js`, so Rust apps (which run wasm-bindgen themselves)
// need it beside the other scripts, and wasm-bindgen copies a script only when an import
// names it (an empty block is not enough). This one is never read: it costs the module
// nothing.
#[wasm_bindgen::prelude::wasm_bindgen(module = "/js/codes.js")]
extern "C" {
    #[wasm_bindgen(thread_local_v2, js_name = RELAY_FRAME)]
    static RELAY_FRAME: wasm_bindgen::JsValue;
}

/// The codes as Rust constants, and (for the test) as the JavaScript that declares them.
macro_rules! codes {
    ($(
        $(#[doc = $doc:literal])*
        pub mod $group:ident: $ty:ty {
            $( $(#[doc = $cdoc:literal])* $name:ident = $value:expr, )*
        }
    )*) => {
        $(
            $(#[doc = $doc])*
            pub mod $group {
                $( $(#[doc = $cdoc])* pub const $name: $ty = $value; )*
            }
        )*

        /// `js/codes.js`, as this file says it must read.
        #[cfg(test)]
        fn script() -> String {
            let mut out = String::from(HEADER);
            $(
                out.push('\n');
                $( out.push_str(&["//", $doc, "\n"].concat()); )*
                $(
                    out.push_str(&comment(&[$($cdoc),*]));
                    out.push_str(&format!(
                        "export const {}_{} = {};\n",
                        stringify!($group).to_uppercase(),
                        stringify!($name),
                        Js::js(&$group::$name),
                    ));
                )*
            )*
            out
        }
    };
}

codes! {
    /// What a `TodoFeed` asks of `FeedCore.op` (one entry point for six small calls: each
    /// export costs the package glue of its own). It answers 0 but where said.
    pub mod op: u32 {
        /// A snapshot is being loaded: changes that arrive meanwhile wait for it.
        BEGIN_LOAD = 0,
        /// Start the session at the last snapshot's id: it applies what arrived while loading
        /// (through the hook), then streams.
        INSTALL = 1,
        /// Whether a snapshot is awaited: 1 or 0.
        IS_LOADING = 2,
        /// The id up to which every change has been applied (-1: none yet).
        CURSOR = 3,
        /// Disconnect, not for good (the cursor stays), and forget the hook.
        STOP = 4,
        /// Disconnect for good.
        CLOSE = 5,
    }

    /// What a `FeedCore`'s hook hears: its first argument.
    pub mod hook: u32 {
        /// `(CHANGE, effect, event)`: a change was applied; `effect` holds `EFFECT_` bits.
        CHANGE = 0,
        /// The changes since the snapshot cannot be had: load a snapshot again.
        RESYNC = 1,
        /// The status changed.
        STATUS = 2,
        /// `(PRESENCE, 0, presence)`: who is on a list now (the `presence` message, parsed).
        PRESENCE = 3,
    }

    /// What a change did to a feed's replica: bits of the hook's `effect`.
    pub mod effect: u32 {
        /// The todos changed.
        TODOS = 1,
        /// The lists changed.
        LISTS = 2,
    }

    /// The tab relay's messages (`js/relay.js`), by their `t`: on the `BroadcastChannel`
    /// between tabs, and from the relay to Rust (`FRAME`, each frame of a `REPLAY`, `STATUS`,
    /// `RELOAD`, `PRESENCE`, `LEAD`, `ALONE`).
    pub mod relay: &str {
        /// `{prev, id, name, data}`: a change the leader applied; `prev` was its cursor before.
        FRAME = "f",
        /// `{at, s, h}`: the leader's cursor, connection status and `document.hidden`, on
        /// every change and in answer to a ping.
        STATUS = "s",
        /// A follower heard nothing for a while: is the leader alive?
        PING = "p",
        /// `{from, by}`: follower `by` lacks what came after id `from`.
        NEED = "n",
        /// `{to, frames}`: the leader's answer to a `NEED`: the frames after `from` from its
        /// ring.
        REPLAY = "r",
        /// `{to?}`: reload your snapshot: to the tab that asked when the ring does not reach
        /// back, to every tab on `resync`.
        RELOAD = "x",
        /// `{data, to?}`: a `presence` message the leader's stream received (its JSON data,
        /// as received), or one it kept, for the tab that said `HELLO`.
        PRESENCE = "w",
        /// `{by}`: tab `by` joined: the leader sends it the presence it knows (the stream
        /// tells only changes of it).
        HELLO = "h",
        /// `{on}`, to Rust only: this tab now leads, or no longer.
        LEAD = "l",
        /// To Rust only: the relay cannot join (the `accessToken` function gave no token, so
        /// there is no user to share as): connect alone.
        ALONE = "o",
    }
}

#[cfg(test)]
const HEADER: &str = "// @ts-check
// Generated from src/codes.rs (TIDINGS_BLESS=1 cargo test -p tidings-client codes): do not
// edit. The codes the scripts and Rust exchange; src/codes.rs says why they are codes.
";

/// A code as JavaScript writes it.
#[cfg(test)]
trait Js {
    fn js(&self) -> String;
}

#[cfg(test)]
impl Js for u32 {
    fn js(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
impl Js for &str {
    fn js(&self) -> String {
        format!("'{self}'")
    }
}

/// Doc lines as a JSDoc comment (`/** … */`).
#[cfg(test)]
fn comment(lines: &[&str]) -> String {
    match lines {
        [line] => format!("/**{line} */\n"),
        _ => {
            let mut out = String::from("/**\n");
            for line in lines {
                out.push_str(&format!(" *{line}\n"));
            }
            out + " */\n"
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn codes_js_is_generated_from_this_file() {
        crate::check_generated("js/codes.js", &super::script());
    }
}
