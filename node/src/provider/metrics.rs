//! The provider daemon's counters, `lode_provider_jobs_total{step}`, in the process-wide Prometheus registry
//! the node's `/metrics` server renders ([`crate::services::metrics::serve`]); `--metrics-listen` serves them.
//! The same counts are logged as a summary line when the daemon stops.

use std::sync::OnceLock;

use malachitebft_app_channel::app::metrics::{
    prometheus::metrics::{counter::Counter, family::Family, gauge::Gauge},
    SharedRegistry,
};

/// The steps counted.
pub const STEPS: [&str; 8] = [
    "accepted",
    "declined",
    "committed",
    "revealed",
    "settled",
    "failed",
    "challenge_answered",
    "error",
];

/// The daemon's counters.
#[derive(Debug)]
pub struct ProviderMetrics {
    /// `lode_provider_jobs_total{step}`: job steps done (see [`STEPS`]).
    pub jobs: Family<Vec<(&'static str, &'static str)>, Counter>,
    /// `lode_provider_jobs_in_table`: jobs the daemon is following.
    pub in_table: Gauge,
    /// `lode_provider_height`: the last height whose events were handled.
    pub height: Gauge,
}

impl ProviderMetrics {
    /// Counts one `step` (one of [`STEPS`]).
    pub fn step(&self, step: &'static str) {
        self.jobs.get_or_create(&vec![("step", step)]).inc();
    }

    /// The count of `step` so far.
    pub fn count(&self, step: &'static str) -> u64 {
        self.jobs.get_or_create(&vec![("step", step)]).get()
    }

    /// `accepted=1 committed=1 …`, for the log.
    pub fn summary(&self) -> String {
        STEPS
            .iter()
            .map(|s| format!("{s}={}", self.count(s)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The daemon's counters, registered on first use.
pub fn metrics() -> &'static ProviderMetrics {
    static METRICS: OnceLock<ProviderMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let m = ProviderMetrics {
            jobs: Family::default(),
            in_table: Gauge::default(),
            height: Gauge::default(),
        };
        for s in STEPS {
            let _ = m.jobs.get_or_create(&vec![("step", s)]);
        }
        SharedRegistry::global().with_prefix("lode_provider", |r| {
            r.register(
                "jobs",
                "Job steps done by this provider, by step",
                m.jobs.clone(),
            );
            r.register(
                "jobs_in_table",
                "Jobs this provider is following",
                m.in_table.clone(),
            );
            r.register(
                "height",
                "Last height whose events this provider handled",
                m.height.clone(),
            );
        });
        m
    })
}
