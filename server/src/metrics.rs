//! Prometheus metrics (`GET /metrics`), through the `metrics` facade and its Prometheus
//! exporter (no listener of its own: Rocket serves the text).
//!
//! The counters on hot paths (deliveries, published events) are registered once and kept as
//! handles, so recording one is an atomic add, not a registry lookup.
//!
//! | metric | kind | what |
//! | --- | --- | --- |
//! | `tidings_open_streams` | gauge | event streams open now |
//! | `tidings_streams_opened_total` | counter | streams opened |
//! | `tidings_streams_refused_total{reason}` | counter | stream requests refused, by error code |
//! | `tidings_streams_closed_total{reason}` | counter | streams ended: `client_left`, `shutdown`, `token_expired`, `database_error` |
//! | `tidings_events_published_total` | counter | committed events the tailer broadcast |
//! | `tidings_deliveries_total` | counter | events written to streams (live and replayed) |
//! | `tidings_replayed_events_total` | counter | events streams read back from the log |
//! | `tidings_lag_catchups_total` | counter | times a stream fell behind the broadcast buffer |
//! | `tidings_presence_messages_total` | counter | `presence` messages broadcast (one per list and change) |
//! | `tidings_resyncs_total{reason}` | counter | resume points refused: `pruned`, `ahead`, `epoch` |
//! | `tidings_write_seconds` | histogram | duration of a write, queueing and its group's commit included |
//! | `tidings_write_group_writes` | histogram | writes committed together in one transaction |
//! | `tidings_requests_total{method,route,status}` | counter | requests, by route pattern |
//! | `tidings_database_errors_total{kind}` | counter | `full`, `unavailable`, `internal` |
//! | `tidings_tailer_lag` | gauge | committed events not yet broadcast, as last seen |

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Handles of the metrics recorded on hot paths.
#[derive(Debug, Clone)]
pub struct Handles {
    /// `tidings_open_streams`.
    pub open_streams: Gauge,
    /// `tidings_streams_opened_total`.
    pub streams_opened: Counter,
    /// `tidings_events_published_total`.
    pub events_published: Counter,
    /// `tidings_deliveries_total`.
    pub deliveries: Counter,
    /// `tidings_replayed_events_total`.
    pub replayed: Counter,
    /// `tidings_lag_catchups_total`.
    pub lag_catchups: Counter,
    /// `tidings_presence_messages_total`.
    pub presence_messages: Counter,
    /// `tidings_write_seconds`.
    pub write_seconds: Histogram,
    /// `tidings_write_group_writes`.
    pub write_group_writes: Histogram,
    /// `tidings_tailer_lag`.
    pub tailer_lag: Gauge,
}

struct Global {
    handle: PrometheusHandle,
    handles: Handles,
}

/// The process's recorder and handles, made on first use. One per process: the `metrics`
/// facade has one global recorder (several servers in one test process share it).
fn global() -> &'static Global {
    static GLOBAL: OnceLock<Global> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
            ])
            .and_then(|builder| {
                builder.set_buckets_for_metric(
                    Matcher::Full("tidings_write_group_writes".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
                )
            })
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Another recorder may be installed already (an embedding application's): then
        // ours still renders what it recorded through the handles below.
        let _ = metrics::set_global_recorder(recorder);
        metrics::describe_gauge!("tidings_open_streams", "Event streams open now");
        metrics::describe_histogram!(
            "tidings_write_seconds",
            metrics::Unit::Seconds,
            "Duration of a write, waiting for its turn and its group's commit included"
        );
        metrics::describe_histogram!(
            "tidings_write_group_writes",
            "Writes committed together in one transaction (group commit)"
        );
        let handles = Handles {
            open_streams: metrics::gauge!("tidings_open_streams"),
            streams_opened: metrics::counter!("tidings_streams_opened_total"),
            events_published: metrics::counter!("tidings_events_published_total"),
            deliveries: metrics::counter!("tidings_deliveries_total"),
            replayed: metrics::counter!("tidings_replayed_events_total"),
            lag_catchups: metrics::counter!("tidings_lag_catchups_total"),
            presence_messages: metrics::counter!("tidings_presence_messages_total"),
            write_seconds: metrics::histogram!("tidings_write_seconds"),
            write_group_writes: metrics::histogram!("tidings_write_group_writes"),
            tailer_lag: metrics::gauge!("tidings_tailer_lag"),
        };
        Global { handle, handles }
    })
}

/// The hot-path handles.
pub fn handles() -> &'static Handles {
    &global().handles
}

/// A stream request refused with `code`.
pub fn stream_refused(code: &'static str) {
    metrics::counter!("tidings_streams_refused_total", "reason" => code).increment(1);
}

/// A stream that ended for `reason`.
pub fn stream_closed(reason: &'static str) {
    metrics::counter!("tidings_streams_closed_total", "reason" => reason).increment(1);
}

/// A resume point refused for `reason`.
pub fn resync(reason: &'static str) {
    metrics::counter!("tidings_resyncs_total", "reason" => reason).increment(1);
}

/// A request answered.
pub fn request(method: &'static str, route: String, status: u16) {
    metrics::counter!(
        "tidings_requests_total",
        "method" => method,
        "route" => route,
        "status" => status.to_string()
    )
    .increment(1);
}

/// A database failure of `kind` (`full`, `unavailable`, `internal`).
pub fn database_error(kind: &'static str) {
    metrics::counter!("tidings_database_errors_total", "kind" => kind).increment(1);
}

/// Why a scrape was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScrapeRefused {
    /// Access control is on and no metrics token is configured.
    Off,
    /// The bearer token is missing or not the metrics token.
    WrongToken,
}

/// `GET /metrics`, in Rocket's managed state.
#[derive(Debug)]
pub struct Metrics {
    /// With access control: the token a scraper must send (`None`: metrics are off).
    token: Option<String>,
    access_control: bool,
}

impl Metrics {
    /// Metrics for a server with or without access control, and the scraper's token.
    pub fn new(access_control: bool, token: Option<String>) -> Self {
        // Register the recorder at start, so the first scrape already has every handle.
        let _ = global();
        Metrics { token, access_control }
    }

    /// Whether a scrape with `bearer` may read the metrics.
    pub fn authorize(&self, bearer: Option<&str>) -> Result<(), ScrapeRefused> {
        if !self.access_control {
            return Ok(());
        }
        match &self.token {
            None => Err(ScrapeRefused::Off),
            Some(token) if bearer == Some(token.as_str()) => Ok(()),
            Some(_) => Err(ScrapeRefused::WrongToken),
        }
    }

    /// The Prometheus text of everything recorded so far.
    pub fn render(&self) -> String {
        global().handle.render()
    }
}
