//! compute: the verification half of a marketplace job. The provider commits to C by its tile root
//! (`CommitResult`); the hash of the next block seeds the sample, so the provider cannot know the sampled
//! tiles when it commits; it reveals them (`RevealSamples`, over one or several txs) and every validator
//! checks each revealed tile's proofs and recomputes it with `gpu-verify` while executing the block. A pass
//! settles the job (`market::settle`), a wrong tile or a missed deadline slashes the provider
//! (`market::fail`). During the fraud window the consumer may ask for chosen tiles
//! (`ChallengeOutput`), and anyone may prove one wrong element (`FraudProof`).
//!
//! # Reveal sizes
//!
//! One tile's reveal carries 2·T·k bytes of inputs plus proofs: at the defaults (T = 4, k ≤ 4096, m ≤ 65536)
//! about 37.5 KB, under the 64 KiB tx limit, so a provider sends one tile per tx at the largest k and packs
//! several when k is small (16 tiles of a 256-deep job take about 40 KB). a job whose single
//! tile's reveal would not fit in `max_tx_bytes` is refused when posted (code 111).
//!
//! # Detection
//!
//! A provider that corrupts a fraction f of the tiles passes s distinct samples with probability at most
//! (1 − f)^s. At the default minimum s = 16: f = 10% is caught 81.5% of the time, f = 20% 97.2%, f = 50%
//! 99.998%. A single wrong element usually escapes the sample; the consumer's full Freivalds check and the
//! fraud proof catch it. A proposer colluding with a provider can grind the block hash that seeds the
//! sample; the consumer's check and the fraud proof are the backstop for that too.

pub mod error;
pub mod event;
pub mod msg;
pub mod params;
pub mod verdict;

use lode_proto::tx::v1::msg::Sum;

use crate::{
    address::Address,
    error::{CodeRange, ModuleError, StoreError, TxError},
    event::Event,
    module::{BlockCtx, Decoded, Module},
    modules::market::{self, JobStatus},
    params::Params,
    store::StateWrite,
};

pub use error::ComputeError;
pub use msg::ComputeMsg;
pub use params::ComputeParams;

/// The compute module.
#[derive(Debug)]
pub struct Compute;

impl Module for Compute {
    const NAME: &'static str = "compute";
    const CODES: CodeRange = error::CODES;
    type Msg = ComputeMsg;

    fn decode(sum: Sum) -> Decoded<ComputeMsg> {
        match sum {
            sum @ (Sum::ComputeCommitResult(_)
            | Sum::ComputeRevealSamples(_)
            | Sum::ComputeChallengeOutput(_)
            | Sum::ComputeFraudProof(_)) => Decoded::Mine(sum.try_into()),
            other => Decoded::NotMine(other),
        }
    }

    fn encode(m: &ComputeMsg) -> Sum {
        m.into()
    }

    fn sender(m: &ComputeMsg) -> &Address {
        m.sender()
    }

    fn gas(m: &ComputeMsg, p: &Params) -> Option<u64> {
        m.gas(p)
    }

    fn check_stateless(m: &ComputeMsg, p: &Params) -> Result<(), TxError> {
        msg::check_stateless(m, p)
    }

    fn execute<S: StateWrite + ?Sized>(
        s: &mut S,
        m: &ComputeMsg,
        ctx: BlockCtx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        msg::execute(s, m, ctx, events)
    }

    fn end_block<S: StateWrite + ?Sized>(
        s: &mut S,
        ctx: BlockCtx<'_>,
        events: &mut Vec<Event>,
    ) -> Result<(), TxError> {
        end_block(s, ctx, events)
    }

    fn error_examples() -> Vec<TxError> {
        ComputeError::examples()
            .into_iter()
            .map(TxError::from)
            .collect()
    }
}

/// compute's storage keys: its end-of-block queue.
pub mod state_key {
    pub const DUE_PREFIX: &[u8] = b"compute/due/";

    /// `compute/due/` ‖ height ‖ kind ‖ job id → empty.
    pub fn due(height: u64, kind: u8, id: &[u8; 32]) -> Vec<u8> {
        [DUE_PREFIX, &height.to_be_bytes(), &[kind], id].concat()
    }

    pub fn due_at(height: u64) -> Vec<u8> {
        [DUE_PREFIX, &height.to_be_bytes()].concat()
    }
}

/// End-of-block work compute schedules. At one height they run in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Due {
    /// The block after a commit: derive the seed and the sample from this block's hash.
    Seed = 1,
    /// The reveal deadline.
    Reveal = 2,
    /// An availability challenge's answer deadline.
    Challenge = 3,
    /// The fraud window's end: release the holdback.
    Window = 4,
}

pub(crate) fn schedule<S: StateWrite + ?Sized>(s: &mut S, height: u64, kind: Due, id: &[u8; 32]) {
    s.put(state_key::due(height, kind as u8, id), Vec::new());
}

fn corrupt(reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: "compute/due".into(),
        reason: reason.into(),
    }
}

fn end_block<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let prefix = state_key::due_at(ctx.height);
    for (key, _) in s.scan_prefix(&prefix)? {
        s.delete(key.clone());
        let rest = key.get(prefix.len()..).unwrap_or_default();
        let (kind, subject) = rest.split_first().ok_or_else(|| corrupt("empty"))?;
        let id: [u8; 32] = subject.try_into().map_err(|_| corrupt("job id"))?;
        let Some(mut j) = market::job(s, &id)? else {
            continue;
        };
        match *kind {
            k if k == Due::Seed as u8 => {
                if j.status != JobStatus::Committed || j.deadline != ctx.height {
                    continue;
                }
                let seed = lode_gpu_verify::challenge::challenge_seed(&ctx.hash, &id);
                let samples = usize::try_from(j.samples).unwrap_or(usize::MAX);
                let tiles = lode_gpu_verify::challenge::challenge_indices(
                    &seed,
                    &id,
                    j.tile_count(),
                    samples,
                )
                .map_err(|e| TxError::Internal(format!("challenge of a checked job: {e}")))?;
                j.seed = Some(seed);
                j.sampled = tiles;
                j.revealed.clear();
                j.status = JobStatus::Revealing;
                j.deadline = ctx.height.saturating_add(ctx.params.compute.reveal_blocks);
                let list = event::tile_list(&j.sampled);
                j.record(ctx.height, "challenged", format!("tiles {list}"));
                market::put_job(s, &id, &j)?;
                schedule(s, j.deadline, Due::Reveal, &id);
                events.push(
                    market::event::job("compute_challenged", &id)
                        .attr(
                            "provider",
                            j.provider.map(|p| p.to_string()).unwrap_or_default(),
                        )
                        .attr("seed", hex::encode(seed))
                        .attr("tiles", list)
                        .attr("reveal_deadline", j.deadline.to_string()),
                );
            }
            k if k == Due::Reveal as u8 => {
                if j.status == JobStatus::Revealing && j.deadline == ctx.height {
                    market::fail(s, ctx, &id, j, "missed the reveal deadline", events)?;
                }
            }
            k if k == Due::Challenge as u8 => {
                if j.status == JobStatus::Settled
                    && !j.challenge.is_empty()
                    && j.challenge_deadline == ctx.height
                {
                    market::fail_settled(
                        s,
                        ctx,
                        &id,
                        j,
                        None,
                        "availability challenge unanswered",
                        events,
                    )?;
                }
            }
            k if k == Due::Window as u8 => {
                if j.status != JobStatus::Settled || j.deadline != ctx.height {
                    continue;
                }
                if !j.challenge.is_empty() {
                    // A challenge is still open: the window stays open until it is answered or expires.
                    j.deadline = j.challenge_deadline.max(ctx.height.saturating_add(1));
                    market::put_job(s, &id, &j)?;
                    schedule(s, j.deadline, Due::Window, &id);
                    continue;
                }
                market::finalize(s, ctx, &id, j, events)?;
            }
            _ => return Err(TxError::from(corrupt("unknown kind"))),
        }
    }
    Ok(())
}
