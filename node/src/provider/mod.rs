//! The GPU provider: `lode provider probe|bench|run` (the commands are in `cli/provider.rs`).
//!
//! `run` is a long-running daemon ([`daemon`]) that sells this machine's compute on the market:
//!
//! 1. It registers the provider when the chain does not know it (`provider.toml` or flags: [`config`]).
//! 2. It reconciles its job table ([`table`], `<home>/provider/jobs.json`, written atomically) with the jobs
//!    the chain has assigned to it, then follows `EventService.Subscribe` from the last handled height,
//!    filtered on its own address, and reads every job an event names again from the chain.
//! 3. For each job ([`jobs`]): a matched job's A and B come from the node's blob service (roots checked),
//!    their shapes and the memory they need are checked, and the job is accepted, or declined with a
//!    reason; C is computed with `gpu-verify` (CUDA when present, the CPU otherwise), stored in the blob
//!    service and committed; the sampled tiles are revealed when the seed arrives, in as many txs as the
//!    size limit needs; availability challenges are answered the same way.
//! 4. SIGINT/SIGTERM: computations are abandoned (a restart resumes them), due reveals finish, the table is
//!    saved.
//!
//! Every step prints one line on stdout, `job <64-hex id> <step> …` (see the README's "Running a provider"
//! for the list), and counts in `lode_provider_jobs_total{step}` ([`metrics`]).
//!
//! With the cargo feature `provider-faults` (tests only), `--cheat` makes the same daemon corrupt its
//! results or withhold C ([`faults`]).

pub mod chain;
pub mod config;
pub mod daemon;
#[cfg(feature = "provider-faults")]
pub mod faults;

// A cheating provider must never ship: the fault modes exist for the tests' debug builds only.
#[cfg(all(feature = "provider-faults", not(debug_assertions)))]
compile_error!("`provider-faults` makes the provider daemon cheat; it is for test builds only, never a release");
pub mod jobs;
pub mod metrics;
pub mod table;
