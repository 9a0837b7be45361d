//! compute's messages: domain types (gpu-verify's reveal and fraud-proof types), wire conversion with
//! strict bounds, and handlers.

use lode_gpu_verify::{
    fraud::{verify_fraud_proof, FraudProof},
    merkle::InclusionProof,
    verify::{Opening, Rejection, Reveal, TileReveal},
};
use lode_proto::compute::v1 as pb;
use lode_proto::tx::v1::msg::Sum;
use prost::Message;
use sha2::{Digest, Sha256};

use super::{event::tile_list, schedule, verdict, ComputeError, Due};
use crate::{
    address::{parse_address, Address},
    error::TxError,
    event::Event,
    module::BlockCtx,
    modules::{
        bank, gov,
        market::{self, event as mev, existing_job, parse_job_id, Job, JobStatus, MarketError},
    },
    params::Params,
    store::StateWrite,
};

/// Tiles one reveal message may carry at most, whatever the parameters (they bound it further).
pub const MAX_TILES_PER_REVEAL: usize = 256;

/// A compute message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComputeMsg {
    CommitResult {
        provider: Address,
        job: [u8; 32],
        output_root: [u8; 32],
    },
    RevealSamples {
        provider: Address,
        job: [u8; 32],
        reveal: Reveal,
        /// SHA-256 of the message's tiles as sent (the verdict cache's key).
        digest: [u8; 32],
    },
    ChallengeOutput {
        consumer: Address,
        job: [u8; 32],
        tiles: Vec<u64>,
    },
    FraudProof {
        submitter: Address,
        job: [u8; 32],
        proof: Box<FraudProof>,
    },
}

impl ComputeMsg {
    pub fn sender(&self) -> &Address {
        match self {
            ComputeMsg::CommitResult { provider, .. }
            | ComputeMsg::RevealSamples { provider, .. } => provider,
            ComputeMsg::ChallengeOutput { consumer, .. } => consumer,
            ComputeMsg::FraudProof { submitter, .. } => submitter,
        }
    }

    pub fn gas(&self, p: &Params) -> Option<u64> {
        let c = &p.compute;
        match self {
            ComputeMsg::CommitResult { .. } => Some(c.gas_commit),
            ComputeMsg::RevealSamples { reveal, .. } => {
                c.gas_reveal_per_tile.checked_mul(reveal.tiles.len() as u64)
            }
            ComputeMsg::ChallengeOutput { .. } => Some(c.gas_challenge_output),
            ComputeMsg::FraudProof { .. } => Some(c.gas_fraud_proof),
        }
    }
}

fn proof(bytes: &[u8]) -> Result<InclusionProof, TxError> {
    InclusionProof::from_bytes(bytes)
        .map_err(|e| TxError::from(ComputeError::MalformedProof(e.to_string())))
}

fn opening(o: pb::Opening) -> Result<Opening, TxError> {
    Ok(Opening {
        data: o.data.iter().map(|b| *b as i8).collect(),
        proof: proof(&o.proof)?,
    })
}

fn opening_pb(o: &Opening) -> pb::Opening {
    pb::Opening {
        data: o.data.iter().map(|b| *b as u8).collect(),
        proof: o.proof.to_bytes(),
    }
}

fn tile_pb(t: &TileReveal) -> pb::TileReveal {
    pb::TileReveal {
        index: t.index,
        values: t.tile.clone(),
        proof: t.proof.to_bytes(),
        a_rows: t.a_rows.iter().map(opening_pb).collect(),
        b_cols: t.b_cols.iter().map(opening_pb).collect(),
    }
}

fn root(bytes: &[u8], field: &'static str) -> Result<[u8; 32], TxError> {
    bytes.try_into().map_err(|_| TxError::InvalidField {
        field,
        reason: format!("must be 32 bytes, got {}", bytes.len()),
    })
}

fn too_large(r: String) -> TxError {
    TxError::from(ComputeError::RevealTooLarge(r))
}

fn usize_of(v: u64, field: &'static str) -> Result<usize, TxError> {
    usize::try_from(v).map_err(|_| TxError::InvalidField {
        field,
        reason: "out of range".into(),
    })
}

impl TryFrom<Sum> for ComputeMsg {
    type Error = TxError;
    fn try_from(m: Sum) -> Result<Self, TxError> {
        Ok(match m {
            Sum::ComputeCommitResult(m) => ComputeMsg::CommitResult {
                provider: parse_address(&m.provider)?,
                job: parse_job_id(&m.job_id)?,
                output_root: root(&m.output_root, "output_root")?,
            },
            Sum::ComputeRevealSamples(m) => {
                if m.tiles.is_empty() {
                    return Err(TxError::InvalidField {
                        field: "tiles",
                        reason: "a reveal carries at least one tile".into(),
                    });
                }
                if m.tiles.len() > MAX_TILES_PER_REVEAL {
                    return Err(too_large(format!(
                        "{} tiles, at most {MAX_TILES_PER_REVEAL}",
                        m.tiles.len()
                    )));
                }
                let mut h = Sha256::new();
                for t in &m.tiles {
                    h.update(t.encode_to_vec());
                }
                let digest: [u8; 32] = h.finalize().into();
                let tiles = m
                    .tiles
                    .into_iter()
                    .map(|t| {
                        Ok(TileReveal {
                            index: t.index,
                            tile: t.values,
                            proof: proof(&t.proof)?,
                            a_rows: t
                                .a_rows
                                .into_iter()
                                .map(opening)
                                .collect::<Result<_, _>>()?,
                            b_cols: t
                                .b_cols
                                .into_iter()
                                .map(opening)
                                .collect::<Result<_, _>>()?,
                        })
                    })
                    .collect::<Result<Vec<_>, TxError>>()?;
                ComputeMsg::RevealSamples {
                    provider: parse_address(&m.provider)?,
                    job: parse_job_id(&m.job_id)?,
                    reveal: Reveal { tiles },
                    digest,
                }
            }
            Sum::ComputeChallengeOutput(m) => ComputeMsg::ChallengeOutput {
                consumer: parse_address(&m.consumer)?,
                job: parse_job_id(&m.job_id)?,
                tiles: m.tiles,
            },
            Sum::ComputeFraudProof(m) => {
                let job = parse_job_id(&m.job_id)?;
                let missing = |field| TxError::InvalidField {
                    field,
                    reason: "missing".into(),
                };
                ComputeMsg::FraudProof {
                    submitter: parse_address(&m.submitter)?,
                    job,
                    proof: Box::new(FraudProof {
                        job_id: job,
                        row: usize_of(m.row, "row")?,
                        col: usize_of(m.col, "col")?,
                        tile: m.tile,
                        tile_proof: proof(&m.tile_proof)?,
                        a_row: opening(m.a_row.ok_or_else(|| missing("a_row"))?)?,
                        b_col: opening(m.b_col.ok_or_else(|| missing("b_col"))?)?,
                    }),
                }
            }
            other => return Err(TxError::Decode(format!("not a compute message: {other:?}"))),
        })
    }
}

impl From<&ComputeMsg> for Sum {
    fn from(m: &ComputeMsg) -> Sum {
        match m {
            ComputeMsg::CommitResult {
                provider,
                job,
                output_root,
            } => Sum::ComputeCommitResult(pb::MsgCommitResult {
                provider: provider.to_string(),
                job_id: job.to_vec(),
                output_root: output_root.to_vec(),
            }),
            ComputeMsg::RevealSamples {
                provider,
                job,
                reveal,
                ..
            } => Sum::ComputeRevealSamples(pb::MsgRevealSamples {
                provider: provider.to_string(),
                job_id: job.to_vec(),
                tiles: reveal.tiles.iter().map(tile_pb).collect(),
            }),
            ComputeMsg::ChallengeOutput {
                consumer,
                job,
                tiles,
            } => Sum::ComputeChallengeOutput(pb::MsgChallengeOutput {
                consumer: consumer.to_string(),
                job_id: job.to_vec(),
                tiles: tiles.clone(),
            }),
            ComputeMsg::FraudProof {
                submitter,
                job,
                proof,
            } => Sum::ComputeFraudProof(pb::MsgFraudProof {
                submitter: submitter.to_string(),
                job_id: job.to_vec(),
                row: proof.row as u64,
                col: proof.col as u64,
                tile: proof.tile.clone(),
                tile_proof: proof.tile_proof.to_bytes(),
                a_row: Some(opening_pb(&proof.a_row)),
                b_col: Some(opening_pb(&proof.b_col)),
            }),
        }
    }
}

/// Builds a reveal message for `tiles` from a prover (the provider daemon and tests use it).
pub fn reveal_msg(
    provider: Address,
    job: [u8; 32],
    prover: &lode_gpu_verify::verify::Prover,
    tiles: &[u64],
) -> Result<ComputeMsg, lode_gpu_verify::Error> {
    let reveal = prover.reveal(tiles)?;
    let mut h = Sha256::new();
    for t in &reveal.tiles {
        h.update(tile_pb(t).encode_to_vec());
    }
    Ok(ComputeMsg::RevealSamples {
        provider,
        job,
        reveal,
        digest: h.finalize().into(),
    })
}

/// Bounds that need the parameters: tile shapes and opening lengths (so verification work is bounded).
pub fn check_stateless(m: &ComputeMsg, p: &Params) -> Result<(), TxError> {
    let c = &p.compute;
    let max_t = c.max_tile as usize;
    // Values in a T×T tile (u32 × u32 fits a 64-bit usize; saturation only on smaller targets).
    let max_tile_len = max_t.saturating_mul(max_t);
    let max_k = usize::try_from(c.max_k).unwrap_or(usize::MAX);
    match m {
        ComputeMsg::RevealSamples { reveal, .. } => {
            if reveal.tiles.len() > c.max_samples.max(c.max_challenge_tiles) as usize {
                return Err(too_large(format!(
                    "{} tiles, more than any job owes",
                    reveal.tiles.len()
                )));
            }
            for t in &reveal.tiles {
                if t.tile.len() > max_tile_len
                    || t.a_rows.len() > max_t
                    || t.b_cols.len() > max_t
                    || t.a_rows
                        .iter()
                        .chain(&t.b_cols)
                        .any(|o| o.data.len() > max_k)
                {
                    return Err(too_large(format!(
                        "tile {} is over the bounds (T <= {max_t}, k <= {max_k})",
                        t.index
                    )));
                }
            }
            Ok(())
        }
        ComputeMsg::ChallengeOutput { tiles, .. } => {
            if tiles.is_empty() || tiles.len() > c.max_challenge_tiles as usize {
                return Err(TxError::InvalidField {
                    field: "tiles",
                    reason: format!("ask for 1..={} tiles", c.max_challenge_tiles),
                });
            }
            Ok(())
        }
        ComputeMsg::FraudProof { proof, .. } => {
            if proof.tile.len() > max_tile_len
                || proof.a_row.data.len() > max_k
                || proof.b_col.data.len() > max_k
            {
                return Err(too_large("fraud proof over the bounds".into()));
            }
            Ok(())
        }
        ComputeMsg::CommitResult { .. } => Ok(()),
    }
}

/// A reveal rejection that is malformed input: its error code.
fn rejection_error(r: Rejection) -> TxError {
    TxError::from(match r {
        Rejection::InvalidJob(s) => ComputeError::TileShape {
            index: 0,
            reason: s,
        },
        Rejection::MissingSample { index } | Rejection::UnexpectedTile { index } => {
            ComputeError::TileNotChallenged(index)
        }
        Rejection::DuplicateTile { index } => ComputeError::DuplicateTile(index),
        Rejection::TileShape {
            index,
            expected,
            actual,
        } => ComputeError::TileShape {
            index,
            reason: format!("{actual} values, expected {expected}"),
        },
        Rejection::OpeningCount {
            index,
            what,
            expected,
            actual,
        } => ComputeError::TileShape {
            index,
            reason: format!("{actual} {what}, expected {expected}"),
        },
        Rejection::TileProof { index, reason } => ComputeError::TileProof { index, reason },
        Rejection::RowProof { index, row, reason } => ComputeError::RowProof {
            index,
            row: row as u64,
            reason,
        },
        Rejection::ColumnProof { index, col, reason } => ComputeError::ColumnProof {
            index,
            col: col as u64,
            reason,
        },
        Rejection::WrongResult { index, .. } => ComputeError::TileShape {
            index,
            reason: "wrong result".into(),
        },
    })
}

fn not_provider(j: &Job, sender: &Address) -> Result<(), TxError> {
    if j.provider.as_ref() != Some(sender) {
        return Err(TxError::from(MarketError::NotProvider(sender.to_string())));
    }
    Ok(())
}

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    m: &ComputeMsg,
    ctx: BlockCtx<'_>,
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    check_stateless(m, ctx.params)?;
    match m {
        ComputeMsg::CommitResult {
            provider,
            job,
            output_root,
        } => {
            let mut j = market::msg::provider_job_in(s, ctx, job, provider, JobStatus::Accepted)?;
            j.output_root = Some(*output_root);
            j.commit_height = ctx.height;
            j.status = JobStatus::Committed;
            // The seed comes from the next block's hash.
            j.deadline = ctx.height.saturating_add(1);
            j.record(
                ctx.height,
                "committed",
                format!("output root {}", hex::encode(output_root)),
            );
            market::put_job(s, job, &j)?;
            schedule(s, j.deadline, Due::Seed, job);
            events.push(
                mev::job("compute_committed", job)
                    .attr("provider", provider.to_string())
                    .attr("output_root", hex::encode(output_root)),
            );
        }
        ComputeMsg::RevealSamples {
            provider,
            job,
            reveal,
            digest,
        } => reveal_samples(s, ctx, provider, job, reveal, digest, events)?,
        ComputeMsg::ChallengeOutput {
            consumer,
            job,
            tiles,
        } => {
            let mut j = existing_job(s, job)?;
            if j.consumer != *consumer {
                return Err(TxError::from(MarketError::NotConsumer(
                    consumer.to_string(),
                )));
            }
            settled_in_window(&j, ctx)?;
            if !j.challenge.is_empty() {
                return Err(TxError::from(ComputeError::ChallengeOpen));
            }
            let count = j.tile_count();
            let mut sorted = tiles.clone();
            sorted.sort_unstable();
            for w in sorted.windows(2) {
                if let [a, b] = w {
                    if a == b {
                        return Err(TxError::from(ComputeError::DuplicateTile(*a)));
                    }
                }
            }
            if let Some(bad) = sorted.iter().find(|t| **t >= count) {
                return Err(TxError::InvalidField {
                    field: "tiles",
                    reason: format!("tile {bad} is outside the job's {count} tiles"),
                });
            }
            let fee = ctx.params.compute.challenge_fee;
            if fee > 0 {
                bank::transfer(s, consumer, &gov::treasury(), fee)?;
            }
            j.challenge_deadline = ctx.height.saturating_add(ctx.params.compute.reveal_blocks);
            let list = tile_list(&sorted);
            j.challenge = sorted;
            j.challenge_answered.clear();
            j.record(ctx.height, "output_challenged", format!("tiles {list}"));
            market::put_job(s, job, &j)?;
            schedule(s, j.challenge_deadline, Due::Challenge, job);
            events.push(
                mev::job("compute_output_challenged", job)
                    .attr(
                        "provider",
                        j.provider.map(|p| p.to_string()).unwrap_or_default(),
                    )
                    .attr("tiles", list)
                    .attr("answer_deadline", j.challenge_deadline.to_string()),
            );
        }
        ComputeMsg::FraudProof {
            submitter,
            job,
            proof,
        } => {
            let j = existing_job(s, job)?;
            if j.status == JobStatus::FraudProven {
                return Err(TxError::from(ComputeError::FraudAlreadyProven));
            }
            settled_in_window(&j, ctx)?;
            let vj = j
                .verify_job(job)
                .ok_or_else(|| TxError::Internal("settled job without output root".into()))?;
            let proven = verify_fraud_proof(&vj, proof)
                .map_err(|e| TxError::from(ComputeError::FraudProofInvalid(e.to_string())))?;
            let reason = format!(
                "C[{}][{}] committed as {}, correct value {}",
                proven.row, proven.col, proven.claimed, proven.correct
            );
            market::fail_settled(s, ctx, job, j, Some(submitter), &reason, events)?;
        }
    }
    Ok(())
}

/// A settled job whose fraud window is still open.
fn settled_in_window(j: &Job, ctx: BlockCtx<'_>) -> Result<(), TxError> {
    match j.status {
        JobStatus::Settled if ctx.height <= j.deadline => Ok(()),
        JobStatus::Settled | JobStatus::Final | JobStatus::Withheld | JobStatus::FraudProven => {
            Err(TxError::from(ComputeError::WindowClosed {
                closed: j.deadline,
                height: ctx.height,
            }))
        }
        other => Err(TxError::from(MarketError::WrongJobStatus {
            actual: other.as_str(),
            expected: JobStatus::Settled.as_str(),
        })),
    }
}

#[allow(clippy::too_many_arguments)]
fn reveal_samples<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: BlockCtx<'_>,
    provider: &Address,
    job: &[u8; 32],
    reveal: &Reveal,
    digest: &[u8; 32],
    events: &mut Vec<Event>,
) -> Result<(), TxError> {
    let mut j = existing_job(s, job)?;
    not_provider(&j, provider)?;
    let sample = match j.status {
        JobStatus::Revealing => true,
        JobStatus::Settled if !j.challenge.is_empty() => false,
        other => return Err(TxError::from(ComputeError::NothingToReveal(other.as_str()))),
    };
    let (owed, done, deadline) = if sample {
        (j.sampled.clone(), j.revealed.clone(), j.deadline)
    } else {
        (
            j.challenge.clone(),
            j.challenge_answered.clone(),
            j.challenge_deadline,
        )
    };
    if ctx.height > deadline {
        return Err(TxError::from(MarketError::DeadlinePassed {
            deadline,
            height: ctx.height,
        }));
    }
    let mut seen = Vec::with_capacity(reveal.tiles.len());
    for t in &reveal.tiles {
        if !owed.contains(&t.index) {
            return Err(TxError::from(ComputeError::TileNotChallenged(t.index)));
        }
        if done.contains(&t.index) {
            return Err(TxError::from(ComputeError::TileAlreadyRevealed(t.index)));
        }
        if seen.contains(&t.index) {
            return Err(TxError::from(ComputeError::DuplicateTile(t.index)));
        }
        seen.push(t.index);
    }
    let vj = j
        .verify_job(job)
        .ok_or_else(|| TxError::Internal("revealing job without output root".into()))?;
    let v = verdict::verdict(&vj, &owed, reveal, digest)
        .map_err(|e| TxError::from(ComputeError::Backend(e)))?;
    match v {
        Ok(()) => {
            let list = tile_list(&seen);
            if sample {
                j.revealed.extend(&seen);
                j.revealed.sort_unstable();
            } else {
                j.challenge_answered.extend(&seen);
                j.challenge_answered.sort_unstable();
            }
            j.record(ctx.height, "revealed", format!("tiles {list} verified"));
            events.push(
                mev::job("compute_revealed", job)
                    .attr("provider", provider.to_string())
                    .attr("tiles", list)
                    .attr("verdict", "pass"),
            );
            if sample && j.revealed.len() == j.sampled.len() {
                let j = market::settle(s, ctx, job, j, events)?;
                schedule(s, j.deadline, Due::Window, job);
            } else if !sample && j.challenge_answered.len() == j.challenge.len() {
                j.challenge.clear();
                j.challenge_answered.clear();
                j.record(ctx.height, "challenge_answered", String::new());
                market::put_job(s, job, &j)?;
            } else {
                market::put_job(s, job, &j)?;
            }
        }
        Err(Rejection::WrongResult {
            index,
            row,
            col,
            claimed,
            computed,
        }) => {
            let reason = format!(
                "wrong result in tile {index}: C[{row}][{col}] is {claimed}, recomputed {computed}"
            );
            events.push(
                mev::job("compute_revealed", job)
                    .attr("provider", provider.to_string())
                    .attr("tiles", tile_list(&seen))
                    .attr("verdict", "wrong_result"),
            );
            if sample {
                market::fail(s, ctx, job, j, &reason, events)?;
            } else {
                market::fail_settled(s, ctx, job, j, None, &reason, events)?;
            }
        }
        Err(other) => return Err(rejection_error(other)),
    }
    Ok(())
}
