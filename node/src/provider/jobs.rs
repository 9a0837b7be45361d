//! One job's work, as tasks the daemon spawns: [`work`] (fetch and check the inputs, accept or decline,
//! compute, store C, commit) and [`reveal`] (reveal sampled tiles, or answer an availability challenge).
//! Each task runs to the end of its step and reports back; the daemon then reads the job from the chain
//! again, so a task never has to guess what the chain did.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eyre::{bail, ensure, eyre, WrapErr};
use lode_gpu_verify::{verify::Prover, Engine, MatrixI32, MatrixI8, MAX_K};
use lode_state::{
    address::Address,
    modules::{
        compute::msg::{reveal_msg, ComputeMsg, MAX_TILES_PER_REVEAL},
        market::MarketMsg,
    },
    tx::Msg,
};
use tokio::sync::Semaphore;

use super::chain::{refused_with, Chain};
use super::daemon::Output;
use super::table::{parse32, JobEntry};
use crate::blobs::client::BlobClient;

/// `ERR_WRONG_JOB_STATUS`: the job is no longer in the step the tx is for (e.g. a tx of ours that landed
/// before a restart).
const WRONG_JOB_STATUS: u32 = 107;
/// `compute`'s "tile already revealed".
const TILE_ALREADY_REVEALED: u32 = 132;
/// Tries of a blob put before committing without C stored.
const PUT_TRIES: u32 = 5;
/// Blocks before the accept deadline at which a provider still missing the inputs declines (the decline must
/// land by the deadline, or the chain declines for it with a reputation loss).
const DECLINE_MARGIN_BLOCKS: u64 = 5;
/// Longest wait between two tries to fetch the inputs: short, so a fast chain's deadline is not overshot.
const FETCH_RETRY_MAX: Duration = Duration::from_millis(500);
/// Bytes a reveal tx may use: the chain's limit less this (nonce and fee digits vary between sizing and
/// sending).
const TX_SIZE_MARGIN: usize = 256;

/// What the tasks share.
pub struct Ctx {
    pub chain: Chain,
    pub me: Address,
    pub engine: Arc<Engine>,
    /// One permit per device: jobs computed at once.
    pub devices: Semaphore,
    /// Jobs whose matrices and product need more host memory are declined.
    pub max_memory_mib: u64,
    pub out: Output,
    #[cfg(feature = "provider-faults")]
    pub cheat: Option<super::faults::Cheat>,
    /// Test fault: stop working (without exiting) once a job is accepted, so a test can SIGKILL the
    /// daemon exactly there.
    #[cfg(feature = "provider-faults")]
    pub stall_after_accept: bool,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    fn blobs(&self) -> BlobClient {
        BlobClient::new(self.chain.channel())
    }

    fn withholds(&self) -> bool {
        #[cfg(feature = "provider-faults")]
        if let Some(c) = self.cheat {
            return c.withholds();
        }
        false
    }
}

/// How a [`work`] task ended.
#[derive(Debug)]
pub enum WorkOutcome {
    /// Declined, with the reason sent.
    Declined(String),
    /// Committed; the prover answers the reveal.
    Committed(Arc<Prover>),
}

/// Host memory a job needs while computed and committed, in MiB: A, B and Bᵀ (int8), C and its tile bytes
/// (int32), and the trees (a few hashes per row, column and tile).
pub fn job_memory_mib(m: u64, k: u64, n: u64) -> u64 {
    let mk = m.saturating_mul(k);
    let kn = k.saturating_mul(n);
    let mn = m.saturating_mul(n);
    let bytes = mk
        .saturating_add(kn.saturating_mul(2))
        .saturating_add(mn.saturating_mul(8))
        .saturating_add(m.saturating_add(n).saturating_add(mn).saturating_mul(64));
    bytes.div_ceil(1 << 20)
}

/// Why a job's inputs cannot be worked on (the decline reason), or None when they can.
pub fn check_inputs(
    e: &JobEntry,
    a: &MatrixI8,
    b: &MatrixI8,
    max_memory_mib: u64,
) -> Option<String> {
    if (a.rows() as u64, a.cols() as u64) != (e.m, e.k) {
        return Some(format!(
            "A is {}x{}, the job says {}x{}",
            a.rows(),
            a.cols(),
            e.m,
            e.k
        ));
    }
    if (b.rows() as u64, b.cols() as u64) != (e.k, e.n) {
        return Some(format!(
            "B is {}x{}, the job says {}x{}",
            b.rows(),
            b.cols(),
            e.k,
            e.n
        ));
    }
    if e.k > MAX_K as u64 {
        return Some(format!("k = {} is over {MAX_K}", e.k));
    }
    let need = job_memory_mib(e.m, e.k, e.n);
    if need > max_memory_mib {
        return Some(format!(
            "needs {need} MiB of memory, this provider allows {max_memory_mib} MiB"
        ));
    }
    None
}

fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}

/// Downloads A and B (roots checked by the client). Transient failures are retried until `give_up_at`
/// (a height); then the last error is returned.
async fn fetch_inputs(
    ctx: &Ctx,
    id: &str,
    e: &JobEntry,
    give_up_at: u64,
) -> eyre::Result<(MatrixI8, MatrixI8)> {
    let (a_root, b_root) = (parse32(&e.a_root)?, parse32(&e.b_root)?);
    let mut wait = Duration::from_millis(250);
    loop {
        let started = Instant::now();
        let mut blobs = ctx.blobs();
        let got = async {
            // Under the job's shapes: a node cannot make the daemon take more than the job's matrices.
            let a = blobs
                .get_a_for(&a_root, e.m, e.k)
                .await
                .wrap_err("fetching A")?;
            let b = blobs
                .get_b_for(&b_root, e.k, e.n)
                .await
                .wrap_err("fetching B")?;
            Ok::<_, eyre::Report>((a, b))
        }
        .await;
        match got {
            Ok(ab) => {
                tracing::info!(job = %short(id), elapsed_ms = started.elapsed().as_millis() as u64, "inputs fetched");
                return Ok(ab);
            }
            Err(err) => {
                let height = ctx.chain.height().await.unwrap_or(0);
                if height >= give_up_at {
                    return Err(err);
                }
                tracing::warn!(job = %short(id), error = %format!("{err:#}"), "inputs not available yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(FETCH_RETRY_MAX);
            }
        }
    }
}

/// Computes C on the engine (one device permit held), applies a test fault if one is configured, and
/// commits to A, B and C.
async fn compute(
    ctx: &Arc<Ctx>,
    id: &[u8; 32],
    a: MatrixI8,
    b: MatrixI8,
    tile: usize,
) -> eyre::Result<Prover> {
    let _device = ctx
        .devices
        .acquire()
        .await
        .map_err(|_| eyre!("device semaphore closed"))?;
    let engine = ctx.engine.clone();
    #[cfg(feature = "provider-faults")]
    let cheat = ctx.cheat;
    let id = *id;
    tokio::task::spawn_blocking(move || {
        #[allow(unused_mut)]
        let mut c: MatrixI32 = engine.gemm(&a, &b)?;
        #[cfg(feature = "provider-faults")]
        if let Some(cheat) = cheat {
            let cells = cheat.corrupt(&id, &mut c, tile);
            tracing::warn!(job = %hex::encode(id), cheat = ?cheat, corrupted = cells.len(), "test fault: C corrupted after computing");
        }
        let _ = id;
        Ok::<_, eyre::Report>(Prover::new(a, &b, c, tile)?)
    })
    .await
    .map_err(|e| eyre!("compute task: {e}"))?
}

/// Fetch, check, accept (or decline), compute, store C, commit. `accept` is false for a job the chain
/// already shows accepted (after a restart).
pub async fn work(
    ctx: Arc<Ctx>,
    id_hex: String,
    e: JobEntry,
    accept: bool,
) -> eyre::Result<WorkOutcome> {
    let id = parse32(&id_hex)?;
    let sid = short(&id_hex).to_owned();
    let give_up_at = if accept {
        e.deadline.saturating_sub(DECLINE_MARGIN_BLOCKS)
    } else {
        e.deadline
    };
    let inputs = fetch_inputs(&ctx, &id_hex, &e, give_up_at).await;
    let (a, b) = match inputs {
        Ok(ab) => ab,
        Err(err) if accept => {
            let reason = format!("inputs unavailable: {err:#}");
            return decline(&ctx, &id, &id_hex, reason).await;
        }
        Err(err) => return Err(err),
    };
    if let Some(reason) = check_inputs(&e, &a, &b, ctx.max_memory_mib) {
        if accept {
            return decline(&ctx, &id, &id_hex, reason).await;
        }
        // Accepted before a restart, and the inputs no longer fit: nothing to do but let the deadline pass.
        bail!("cannot compute an accepted job: {reason}");
    }
    if accept {
        let msg = Msg::Market(MarketMsg::AcceptJob {
            provider: ctx.me,
            job: id,
        });
        match ctx.chain.send("accept", &[msg]).await {
            Ok(h) => {
                // Counted before the line is printed, so whoever reads the line finds the count.
                super::metrics::metrics().step("accepted");
                ctx.out.job(&id_hex, &format!("accepted at height {h}"));
                #[cfg(feature = "provider-faults")]
                if ctx.stall_after_accept {
                    ctx.out.job(&id_hex, "stalled after accepting (test fault)");
                    std::future::pending::<()>().await;
                }
            }
            Err(err) if refused_with(&err, WRONG_JOB_STATUS) => {
                // Ours landed before a restart, or the job moved on: go on only if it is accepted by us.
                let job = ctx.chain.job(&id).await?;
                ensure!(
                    job.as_ref()
                        .is_some_and(|j| j.status == "accepted" && j.provider == ctx.me.to_string()),
                    "job {sid} is no longer ours to accept: {err:#}"
                );
            }
            Err(err) => return Err(err),
        }
    }
    let started = Instant::now();
    let tile = usize::try_from(e.tile).map_err(|_| eyre!("tile side out of range"))?;
    let prover = compute(&ctx, &id, a, b, tile).await?;
    let secs = started.elapsed().as_secs_f64();
    let cu = (e.m as f64) * (e.k as f64) * (e.n as f64) / 1e9;
    ctx.out.job(
        &id_hex,
        &format!(
            "computed in {secs:.3} s ({:.2} CU/s, {})",
            cu / secs.max(1e-9),
            ctx.engine.describe()
        ),
    );
    ensure!(
        prover.a_tree().root() == parse32(&e.a_root)?
            && prover.b_tree().root() == parse32(&e.b_root)?,
        "the inputs do not match the job's roots"
    );
    let root = prover.c_tree().root();
    if ctx.withholds() {
        tracing::warn!(job = %sid, "test fault: C not stored in the blob service");
    } else {
        store_c(&ctx, &id_hex, &prover, tile).await;
    }
    let msg = Msg::Compute(ComputeMsg::CommitResult {
        provider: ctx.me,
        job: id,
        output_root: root,
    });
    match ctx.chain.send("commit", &[msg]).await {
        Ok(h) => {
            super::metrics::metrics().step("committed");
            ctx.out.job(
                &id_hex,
                &format!("committed at height {h} output root {}", hex::encode(root)),
            );
        }
        Err(err) if refused_with(&err, WRONG_JOB_STATUS) => {
            let job = ctx.chain.job(&id).await?;
            ensure!(
                job.as_ref()
                    .is_some_and(|j| j.output_root.as_slice() == root.as_slice()),
                "job {sid} could not be committed: {err:#}"
            );
        }
        Err(err) => return Err(err),
    }
    Ok(WorkOutcome::Committed(Arc::new(prover)))
}

/// Stores C in the blob service, retrying a few times; a provider that cannot store C still commits (it
/// answers the reveal from memory) and logs the failure.
async fn store_c(ctx: &Ctx, id_hex: &str, prover: &Prover, tile: usize) {
    let mut wait = Duration::from_millis(250);
    for attempt in 1..=PUT_TRIES {
        let r = ctx
            .blobs()
            .put_c_with_root(
                &ctx.chain.key,
                &ctx.chain.chain_id,
                prover.output(),
                tile,
                prover.c_tree().root(),
            )
            .await;
        match r {
            Ok(_) => {
                ctx.out.job(id_hex, "stored C");
                return;
            }
            Err(err) => {
                tracing::warn!(job = %short(id_hex), attempt, error = %format!("{err:#}"), "storing C failed");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    tracing::error!(job = %short(id_hex), "C is not stored in the blob service; committing anyway");
}

async fn decline(
    ctx: &Ctx,
    id: &[u8; 32],
    id_hex: &str,
    mut reason: String,
) -> eyre::Result<WorkOutcome> {
    reason.truncate(lode_state::modules::market::msg::MAX_REASON_BYTES);
    while !reason.is_char_boundary(reason.len()) {
        reason.pop();
    }
    let msg = Msg::Market(MarketMsg::DeclineJob {
        provider: ctx.me,
        job: *id,
        reason: reason.clone(),
    });
    ctx.chain.send("decline", &[msg]).await?;
    super::metrics::metrics().step("declined");
    ctx.out.job(id_hex, &format!("declined: {reason}"));
    Ok(WorkOutcome::Declined(reason))
}

/// A prover for a committed job, rebuilt after a restart: A and B from the blob service, C from the blob
/// service when it has it, else computed again (with the same test fault, if any); it must reproduce the
/// committed root.
pub async fn rebuild_prover(ctx: &Arc<Ctx>, id_hex: &str, e: &JobEntry) -> eyre::Result<Prover> {
    let id = parse32(id_hex)?;
    let committed = parse32(
        e.output_root
            .as_deref()
            .ok_or_else(|| eyre!("job has no committed output"))?,
    )?;
    let tile = usize::try_from(e.tile).map_err(|_| eyre!("tile side out of range"))?;
    let (a, b) = fetch_inputs(ctx, id_hex, e, e.deadline).await?;
    let stored = if ctx.withholds() {
        None
    } else {
        ctx.blobs().get_c(&committed).await.ok()
    };
    let prover = match stored {
        Some(c) => Prover::new(a, &b, c, tile)?,
        None => compute(ctx, &id, a, b, tile).await?,
    };
    ensure!(
        prover.c_tree().root() == committed,
        "recomputed output root {} differs from the committed {}",
        hex::encode(prover.c_tree().root()),
        hex::encode(committed)
    );
    tracing::info!(job = %short(id_hex), "prover rebuilt");
    Ok(prover)
}

/// Splits `tiles` into reveal messages that each fit in a tx: greedy by the size of each tile's own reveal
/// tx, then each batch checked by signing it and halved while it is over the limit.
pub fn reveal_batches(
    chain_id: &str,
    p: &lode_state::Params,
    me: Address,
    id: [u8; 32],
    prover: &Prover,
    tiles: &[u64],
) -> eyre::Result<Vec<ComputeMsg>> {
    let limit = usize::try_from(p.max_tx_bytes)
        .unwrap_or(usize::MAX)
        .saturating_sub(TX_SIZE_MARGIN);
    let max_tiles = (p.compute.max_samples.max(p.compute.max_challenge_tiles) as usize)
        .clamp(1, MAX_TILES_PER_REVEAL);
    let size_of = |batch: &[u64]| -> eyre::Result<usize> {
        let msg = reveal_msg(me, id, prover, batch)?;
        // Sized with an unchecked encoding: an oversized tx must be measured, not refused.
        let raw = lode_state::tx::sign_msgs(
            chain_id,
            &ed25519_consensus::SigningKey::from([0u8; 32]),
            u64::MAX,
            u128::MAX,
            &[Msg::Compute(msg)],
            "",
        );
        Ok(raw.len())
    };
    // The tx around one tile's reveal, estimated from the smallest single-tile tx less its tile.
    let mut singles = Vec::with_capacity(tiles.len());
    for t in tiles {
        singles.push(size_of(&[*t])?);
    }
    let envelope = 400usize;
    let mut batches: Vec<Vec<u64>> = Vec::new();
    let mut cur: Vec<u64> = Vec::new();
    let mut cur_size = envelope;
    for (t, s) in tiles.iter().zip(&singles) {
        ensure!(
            *s <= limit,
            "tile {t}'s reveal alone is {s} bytes, over the tx limit {limit}"
        );
        let add = s.saturating_sub(envelope);
        if !cur.is_empty() && (cur_size + add > limit || cur.len() >= max_tiles) {
            batches.push(std::mem::take(&mut cur));
            cur_size = envelope;
        }
        cur.push(*t);
        cur_size += add;
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    // Check every batch by its real size; halve the ones over the limit (in order: popped from the end).
    batches.reverse();
    let mut out = Vec::new();
    while let Some(batch) = batches.pop() {
        if batch.len() > 1 && size_of(&batch)? > limit {
            let (x, y) = batch.split_at(batch.len() / 2);
            batches.push(y.to_vec());
            batches.push(x.to_vec());
            continue;
        }
        out.push(reveal_msg(me, id, prover, &batch)?);
    }
    Ok(out)
}

fn tiles_of(m: &ComputeMsg) -> Vec<u64> {
    match m {
        ComputeMsg::RevealSamples { reveal, .. } => reveal.tiles.iter().map(|t| t.index).collect(),
        _ => Vec::new(),
    }
}

fn list(tiles: &[u64]) -> String {
    tiles
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Reveals `tiles` (sampled ones, or an availability challenge's when `challenge`), in as many txs as the
/// size limit needs. Returns the tiles the chain took. A batch refused because a tile was already revealed
/// (a reveal of ours that landed before a restart) is sent again tile by tile.
pub async fn reveal(
    ctx: Arc<Ctx>,
    id_hex: String,
    prover: Arc<Prover>,
    tiles: Vec<u64>,
    challenge: bool,
) -> eyre::Result<Vec<u64>> {
    let id = parse32(&id_hex)?;
    if challenge && ctx.withholds() {
        ctx.out.job(
            &id_hex,
            &format!(
                "challenge of tiles {} ignored (test fault: withhold)",
                list(&tiles)
            ),
        );
        return Ok(tiles);
    }
    let mut run = RevealRun {
        ctx: &ctx,
        id_hex: &id_hex,
        id,
        prover: &prover,
        challenge,
        counted: false,
        done: Vec::new(),
    };
    let msgs = reveal_batches(
        &ctx.chain.chain_id,
        &ctx.chain.params,
        ctx.me,
        id,
        &prover,
        &tiles,
    )?;
    // Every reveal tx is sent at once, at consecutive nonces, so a job whose sample needs several txs (one
    // tile per tx from k = 4096 at T = 4) is revealed in one block rather than one block per tx.
    let mut rest: &[ComputeMsg] = &msgs;
    while !rest.is_empty() {
        let txs: Vec<Vec<Msg>> = rest.iter().map(|m| vec![Msg::Compute(m.clone())]).collect();
        let results = ctx.chain.send_pipelined(run.what(), &txs).await?;
        let sent = results.len();
        // Every result is recorded before an error is returned: the txs after a failed one may have landed.
        let mut first_err = None;
        for (m, r) in rest.iter().zip(results) {
            if let Err(err) = run.record(tiles_of(m), r).await {
                first_err.get_or_insert(err);
            }
        }
        if let Some(err) = first_err {
            return Err(err);
        }
        rest = &rest[sent.min(rest.len())..];
    }
    Ok(run.done)
}

/// One job's reveal (or challenge answer) in progress: what it is about and the tiles the chain has taken.
struct RevealRun<'a> {
    ctx: &'a Ctx,
    id_hex: &'a str,
    id: [u8; 32],
    prover: &'a Prover,
    challenge: bool,
    /// The job's step metric is counted once, at its first tile taken and before any line about it.
    counted: bool,
    done: Vec<u64>,
}

impl RevealRun<'_> {
    /// What the txs are, for logs and errors.
    fn what(&self) -> &'static str {
        if self.challenge {
            "challenge answer"
        } else {
            "reveal"
        }
    }

    fn taken(&mut self, tiles: &[u64]) {
        if !self.counted {
            self.counted = true;
            let step = if self.challenge {
                "challenge_answered"
            } else {
                "revealed"
            };
            super::metrics::metrics().step(step);
        }
        self.done.extend(tiles);
    }

    /// Records one reveal tx's outcome: its tiles taken, or (refused because a tile was already revealed:
    /// ours, landed before a restart) its tiles sent again one by one; any other refusal is the error.
    async fn record(&mut self, batch: Vec<u64>, result: eyre::Result<u64>) -> eyre::Result<()> {
        match result {
            Ok(h) => {
                self.taken(&batch);
                let done = if self.challenge {
                    "answered challenge"
                } else {
                    "revealed"
                };
                self.ctx.out.job(
                    self.id_hex,
                    &format!("{done} tiles {} at height {h}", list(&batch)),
                );
            }
            Err(err) if refused_with(&err, TILE_ALREADY_REVEALED) => {
                for t in batch {
                    let one = reveal_msg(self.ctx.me, self.id, self.prover, &[t])?;
                    match self.ctx.chain.send(self.what(), &[Msg::Compute(one)]).await {
                        Ok(_) => self.taken(&[t]),
                        // Ours, from before a restart: taken, but not counted again.
                        Err(err) if refused_with(&err, TILE_ALREADY_REVEALED) => self.done.push(t),
                        Err(err) => return Err(err),
                    }
                }
            }
            Err(err) => return Err(err),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::table::Stage;

    fn entry(m: u64, k: u64, n: u64) -> JobEntry {
        JobEntry {
            stage: Stage::Matched,
            m,
            k,
            n,
            tile: 4,
            a_root: hex::encode([1u8; 32]),
            b_root: hex::encode([2u8; 32]),
            output_root: None,
            deadline: 10,
            sampled: vec![],
            revealed: vec![],
            challenge: vec![],
            answered: vec![],
        }
    }

    #[test]
    fn inputs_of_the_wrong_shape_or_too_big_for_memory_are_declined_with_a_reason() {
        let a = MatrixI8::zeros(8, 16).expect("a");
        let b = MatrixI8::zeros(16, 4).expect("b");
        assert_eq!(check_inputs(&entry(8, 16, 4), &a, &b, 1024), None);
        let r = check_inputs(&entry(8, 8, 4), &a, &b, 1024).expect("A mislabelled");
        assert!(r.contains("A is 8x16"), "{r}");
        let r = check_inputs(&entry(8, 16, 8), &a, &b, 1024).expect("B mislabelled");
        assert!(r.contains("B is 16x4"), "{r}");
        assert!(job_memory_mib(8192, 8192, 8192) > 512);
        let r = check_inputs(&entry(8, 16, 4), &a, &b, 0).expect("no memory");
        assert!(r.contains("MiB"), "{r}");
    }

    #[test]
    fn reveals_are_split_into_txs_under_the_size_limit_in_tile_order() {
        let engine = Engine::new(lode_gpu_verify::Backend::Cpu).expect("cpu");
        // k = 1024: one tile's reveal carries 8 KiB of rows and columns, so 16 tiles need several txs.
        let a = MatrixI8::from_fn(64, 1024, |i, j| ((i * 7 + j * 3) % 11) as i8 - 5).expect("a");
        let b = MatrixI8::from_fn(1024, 64, |i, j| ((i + j * 5) % 13) as i8 - 6).expect("b");
        let prover = Prover::compute(&engine, a, &b, 4).expect("prover");
        let me = Address::module("provider-test");
        let params = lode_state::Params::default();
        let tiles: Vec<u64> = (0..16).map(|i| i * 15).collect();
        let msgs =
            reveal_batches("lode-test-1", &params, me, [9; 32], &prover, &tiles).expect("batches");
        assert!(
            msgs.len() > 1,
            "16 tiles of k = 1024 do not fit one 64 KiB tx"
        );
        let key = ed25519_consensus::SigningKey::from([1u8; 32]);
        let mut seen = Vec::new();
        for m in &msgs {
            seen.extend(tiles_of(m));
            let raw = lode_state::tx::sign_msgs(
                "lode-test-1",
                &key,
                u64::MAX,
                u128::MAX,
                &[Msg::Compute(m.clone())],
                "",
            );
            assert!(
                raw.len() as u64 <= params.max_tx_bytes,
                "{} bytes",
                raw.len()
            );
        }
        assert_eq!(seen, tiles);
        // A small job packs all its tiles into one tx.
        let a = MatrixI8::from_fn(16, 16, |i, j| (i + j) as i8).expect("a");
        let small = Prover::compute(&engine, a.clone(), &a, 4).expect("prover");
        let msgs = reveal_batches("lode-test-1", &params, me, [9; 32], &small, &[0, 5, 10, 15])
            .expect("batches");
        assert_eq!(msgs.len(), 1);
    }

    #[test]
    fn memory_estimates_do_not_overflow() {
        assert_eq!(
            job_memory_mib(u64::MAX, u64::MAX, u64::MAX),
            u64::MAX.div_ceil(1 << 20)
        );
    }
}
