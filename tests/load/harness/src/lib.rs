//! The tidings load benchmark (issue 5): a raw-TCP SSE load generator spread over worker
//! processes, the scenarios, two baseline servers to compare against, and the report
//! that becomes `BENCHMARKS.md`.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`sse`] | chunked-body decoder and SSE message parser |
//! | [`http`] | the few HTTP/1.1 requests the generator makes, over raw TCP |
//! | [`payload`] | sequence number and publish time carried in each event |
//! | [`stats`] | HdrHistogram latencies that cross processes; medians |
//! | [`control`] | coordinator ↔ worker messages and their reports |
//! | [`worker`] | a worker process holding thousands of streams |
//! | [`fleet`] | the coordinator's handle on its worker processes |
//! | [`publisher`] | fixed-schedule publishing through the REST API |
//! | [`server`] | starting and measuring the servers under test |
//! | [`postgres`] | the PostgreSQL cluster of the scale-out and storage scenarios |
//! | [`deployment`] | one server, or several tidings processes on one database |
//! | [`scenarios`] | the scenarios, one bounded run each |
//! | [`suite`] | the plan (full or quick) and the run of all scenarios |
//! | [`report`] | `BENCHMARKS.md` and the SVG chart |

pub mod control;
pub mod deployment;
pub mod fleet;
pub mod http;
pub mod payload;
pub mod postgres;
pub mod publisher;
pub mod report;
pub mod scenarios;
pub mod server;
pub mod sse;
pub mod stats;
pub mod suite;
pub mod worker;
