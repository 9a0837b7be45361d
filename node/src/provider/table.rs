//! The provider's job table: every job the chain assigned to this provider that still needs something from
//! it, and the last height whose events were handled. It lives in `<home>/provider/jobs.json` and is
//! written by [`JobTable::save`] with write-to-temp, fsync, rename, fsync of the directory, so a SIGKILL at
//! any moment leaves either the old file or the new one, never a torn one.
//!
//! The chain is the source of truth: every entry is rebuilt from the chain's view of its job
//! ([`JobEntry::from_chain`]) whenever an event names it, and [`JobTable::reconcile`] merges the whole list
//! of jobs the chain has assigned to this provider at start. The table adds what the chain does not keep
//! or does not show: the height to resume the event stream from, and which tiles of an availability
//! challenge were already answered.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use eyre::{bail, ensure, eyre, WrapErr};
use lode_proto::market::v1 as mpb;
use serde::{Deserialize, Serialize};

/// Largest job table file read at start; a bigger one is not ours (or is damaged).
pub const MAX_TABLE_BYTES: u64 = 64 << 20;

/// What the chain expects next of this provider for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Matched to us: fetch and check the inputs, then accept or decline by the deadline.
    Matched,
    /// Accepted: compute, store C, commit by the deadline.
    Accepted,
    /// Committed: waiting for the next block's seed.
    Committed,
    /// Sampled: reveal the sampled tiles not yet revealed, by the deadline.
    Revealing,
    /// Settled, fraud window open: answer availability challenges until it closes.
    Settled,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Matched => "matched",
            Stage::Accepted => "accepted",
            Stage::Committed => "committed",
            Stage::Revealing => "revealing",
            Stage::Settled => "settled",
        }
    }
}

/// What the daemon should do for a job now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Fetch and check the inputs, accept (or decline), then compute, store C and commit.
    Work { accept: bool },
    /// Reveal these tiles (of the sample, or of an availability challenge).
    Reveal { tiles: Vec<u64>, challenge: bool },
}

/// One job in the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobEntry {
    pub stage: Stage,
    pub m: u64,
    pub k: u64,
    pub n: u64,
    pub tile: u32,
    /// Hex roots of A (rows) and B (columns).
    pub a_root: String,
    pub b_root: String,
    /// The committed output root (hex), once committed.
    #[serde(default)]
    pub output_root: Option<String>,
    /// The chain's deadline for the current stage (for `Settled`: the fraud window's end).
    pub deadline: u64,
    /// Sampled tiles and those the chain has verified.
    #[serde(default)]
    pub sampled: Vec<u64>,
    #[serde(default)]
    pub revealed: Vec<u64>,
    /// An open availability challenge's tiles, and those this provider has answered.
    #[serde(default)]
    pub challenge: Vec<u64>,
    #[serde(default)]
    pub answered: Vec<u64>,
}

fn root_hex(bytes: &[u8], what: &str) -> eyre::Result<String> {
    ensure!(bytes.len() == 32, "{what} is {} bytes, not 32", bytes.len());
    Ok(hex::encode(bytes))
}

/// Parses a 32-byte hex root or id.
pub fn parse32(s: &str) -> eyre::Result<[u8; 32]> {
    let b = hex::decode(s).map_err(|e| eyre!("{s:?} is not hex: {e}"))?;
    b.as_slice()
        .try_into()
        .map_err(|_| eyre!("{s:?} is {} bytes, not 32", b.len()))
}

impl JobEntry {
    /// The entry for the chain's view of a job, or None when the job needs nothing more from `me` (another
    /// provider's, re-queued, refunded, final, failed...). `local` is the entry held so far: it keeps the
    /// answered challenge tiles the chain does not show.
    pub fn from_chain(
        job: &mpb::Job,
        me: &str,
        local: Option<&JobEntry>,
    ) -> eyre::Result<Option<JobEntry>> {
        if job.provider != me {
            return Ok(None);
        }
        let stage = match job.status.as_str() {
            "matched" => Stage::Matched,
            "accepted" => Stage::Accepted,
            "committed" => Stage::Committed,
            "revealing" => Stage::Revealing,
            "settled" => Stage::Settled,
            _ => return Ok(None),
        };
        let challenge = job.challenge_tiles.clone();
        let answered = match local {
            Some(l) if l.challenge == challenge => l.answered.clone(),
            _ => Vec::new(),
        };
        Ok(Some(JobEntry {
            stage,
            m: job.m,
            k: job.k,
            n: job.n,
            tile: job.tile,
            a_root: root_hex(&job.a_root, "a_root")?,
            b_root: root_hex(&job.b_root, "b_root")?,
            output_root: if job.output_root.is_empty() {
                None
            } else {
                Some(root_hex(&job.output_root, "output_root")?)
            },
            deadline: job.deadline_height,
            sampled: job.sampled_tiles.clone(),
            revealed: job.revealed_tiles.clone(),
            challenge,
            answered,
        }))
    }

    /// What to do for this job at `height` (the last committed height), if anything. A deadline already
    /// passed needs nothing: the chain has failed (or will fail) the step, and its event updates the entry.
    pub fn action(&self, height: u64) -> Option<Action> {
        // A tx sent now lands at height + 1 at the earliest.
        let can_land = height < self.deadline;
        match self.stage {
            Stage::Matched if can_land => Some(Action::Work { accept: true }),
            Stage::Accepted if can_land => Some(Action::Work { accept: false }),
            Stage::Revealing if can_land => {
                let tiles: Vec<u64> = self
                    .sampled
                    .iter()
                    .filter(|t| !self.revealed.contains(t))
                    .copied()
                    .collect();
                (!tiles.is_empty()).then_some(Action::Reveal {
                    tiles,
                    challenge: false,
                })
            }
            Stage::Settled => {
                let tiles: Vec<u64> = self
                    .challenge
                    .iter()
                    .filter(|t| !self.answered.contains(t))
                    .copied()
                    .collect();
                (!tiles.is_empty()).then_some(Action::Reveal {
                    tiles,
                    challenge: true,
                })
            }
            _ => None,
        }
    }
}

/// The table and its file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobTable {
    /// The file format's version.
    pub version: u32,
    /// The provider address this table belongs to.
    pub provider: String,
    /// The last height whose events were handled (0: none yet).
    pub last_height: u64,
    /// Jobs by hex id.
    pub jobs: BTreeMap<String, JobEntry>,
}

/// The table's file format version.
pub const TABLE_VERSION: u32 = 1;

/// What [`JobTable::reconcile`] changed, for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Jobs new to the table (assigned while the daemon was down).
    pub added: Vec<String>,
    /// Jobs whose stage changed.
    pub updated: Vec<String>,
    /// Jobs that need nothing more (or that the chain no longer assigns to us).
    pub removed: Vec<String>,
}

impl JobTable {
    /// An empty table for `provider`.
    pub fn new(provider: &str) -> Self {
        JobTable {
            version: TABLE_VERSION,
            provider: provider.to_owned(),
            last_height: 0,
            jobs: BTreeMap::new(),
        }
    }

    /// The table file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("jobs.json")
    }

    /// Loads the table from `dir`, or an empty one when there is no file yet. A file of another provider,
    /// another version, over [`MAX_TABLE_BYTES`] or that does not parse is an error: the operator decides
    /// (the chain has every job, so moving the file away loses nothing but the resume height).
    pub fn load(dir: &Path, provider: &str) -> eyre::Result<Self> {
        let path = Self::path(dir);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new(provider)),
            Err(e) => return Err(eyre!(e).wrap_err(format!("opening {}", path.display()))),
        };
        let len = file.metadata()?.len();
        ensure!(
            len <= MAX_TABLE_BYTES,
            "{} is {len} bytes, over the {MAX_TABLE_BYTES}-byte limit of a job table",
            path.display()
        );
        let mut text = String::with_capacity(len as usize);
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_TABLE_BYTES), &mut text)
            .wrap_err_with(|| format!("reading {}", path.display()))?;
        let t: JobTable = serde_json::from_str(&text)
            .wrap_err_with(|| format!("{} is not a job table", path.display()))?;
        if t.version != TABLE_VERSION {
            bail!(
                "{} has version {}, this build reads {TABLE_VERSION}",
                path.display(),
                t.version
            );
        }
        if t.provider != provider {
            bail!(
                "{} belongs to provider {}, not {provider}: give each provider its own --home",
                path.display(),
                t.provider
            );
        }
        for (id, e) in &t.jobs {
            parse32(id).wrap_err_with(|| format!("{}: job id", path.display()))?;
            parse32(&e.a_root)?;
            parse32(&e.b_root)?;
            if let Some(r) = &e.output_root {
                parse32(r)?;
            }
        }
        Ok(t)
    }

    /// Writes the table atomically: a temp file in the same directory, fsynced, renamed over the old one,
    /// then the directory fsynced so the rename itself survives a crash.
    pub fn save(&self, dir: &Path) -> eyre::Result<()> {
        std::fs::create_dir_all(dir).wrap_err_with(|| format!("creating {}", dir.display()))?;
        let path = Self::path(dir);
        let tmp = dir.join("jobs.json.tmp");
        let bytes = serde_json::to_vec_pretty(self)?;
        {
            let mut f = std::fs::File::create(&tmp)
                .wrap_err_with(|| format!("creating {}", tmp.display()))?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)
            .wrap_err_with(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// Sets the entry of job `id` from the chain's view of it; returns the new stage (None: removed).
    pub fn apply_chain(&mut self, id: &str, job: &mpb::Job) -> eyre::Result<Option<Stage>> {
        let local = self.jobs.get(id);
        match JobEntry::from_chain(job, &self.provider, local)? {
            Some(e) => {
                let stage = e.stage;
                self.jobs.insert(id.to_owned(), e);
                Ok(Some(stage))
            }
            None => {
                self.jobs.remove(id);
                Ok(None)
            }
        }
    }

    /// Merges the chain's list of every job ever assigned to this provider (`lode query market jobs
    /// --provider`): jobs that still need us are added or updated, the rest leave the table, and so do
    /// entries the chain does not list at all.
    pub fn reconcile(&mut self, chain: &[mpb::Job]) -> eyre::Result<Reconciled> {
        let mut out = Reconciled::default();
        let mut listed = std::collections::BTreeSet::new();
        for job in chain {
            let id = root_hex(&job.id, "job id")?;
            listed.insert(id.clone());
            let before = self.jobs.get(&id).map(|e| e.stage);
            let after = self.apply_chain(&id, job)?;
            match (before, after) {
                (None, Some(_)) => out.added.push(id),
                (Some(_), None) => out.removed.push(id),
                (Some(b), Some(a)) if a != b => out.updated.push(id),
                _ => {}
            }
        }
        let gone: Vec<String> = self
            .jobs
            .keys()
            .filter(|id| !listed.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            self.jobs.remove(&id);
            out.removed.push(id);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "lode1me";

    fn chain_job(id: u8, status: &str, provider: &str) -> mpb::Job {
        mpb::Job {
            id: vec![id; 32],
            m: 8,
            k: 16,
            n: 8,
            tile: 4,
            a_root: vec![1; 32],
            b_root: vec![2; 32],
            status: status.into(),
            provider: provider.into(),
            deadline_height: 50,
            ..Default::default()
        }
    }

    fn id(i: u8) -> String {
        hex::encode([i; 32])
    }

    #[test]
    fn a_saved_table_loads_back_equal_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = JobTable::new(ME);
        t.last_height = 42;
        t.apply_chain(&id(1), &chain_job(1, "accepted", ME))
            .expect("apply");
        t.save(dir.path()).expect("save");
        assert_eq!(JobTable::load(dir.path(), ME).expect("load"), t);
        assert!(!dir.path().join("jobs.json.tmp").exists());
        // Saving again replaces the file whole.
        t.last_height = 43;
        t.jobs.clear();
        t.save(dir.path()).expect("save again");
        assert_eq!(JobTable::load(dir.path(), ME).expect("load"), t);
    }

    #[test]
    fn a_missing_table_is_empty_and_a_foreign_or_damaged_one_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            JobTable::load(dir.path(), ME).expect("empty"),
            JobTable::new(ME)
        );
        JobTable::new("lode1other").save(dir.path()).expect("save");
        let e = JobTable::load(dir.path(), ME).expect_err("foreign table");
        assert!(e.to_string().contains("belongs to provider"), "{e}");
        // A torn write (what a non-atomic writer would leave) does not parse and is refused, not
        // half-read.
        let full = serde_json::to_vec(&JobTable::new(ME)).expect("json");
        std::fs::write(JobTable::path(dir.path()), &full[..full.len() / 2]).expect("write");
        let e = JobTable::load(dir.path(), ME).expect_err("torn table");
        assert!(e.to_string().contains("not a job table"), "{e}");
        // A stale temp file from a killed save is ignored: the last complete table is what loads.
        let mut t = JobTable::new(ME);
        t.last_height = 7;
        t.save(dir.path()).expect("save");
        std::fs::write(dir.path().join("jobs.json.tmp"), b"{\"version\":").expect("tmp");
        assert_eq!(JobTable::load(dir.path(), ME).expect("load").last_height, 7);
    }

    #[test]
    fn a_bad_id_in_the_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = JobTable::new(ME);
        t.apply_chain(&id(1), &chain_job(1, "matched", ME))
            .expect("apply");
        let e = t.jobs.remove(&id(1)).expect("entry");
        t.jobs.insert("zz".into(), e);
        t.save(dir.path()).expect("save");
        assert!(JobTable::load(dir.path(), ME).is_err());
    }

    #[test]
    fn reconciling_adds_assigned_jobs_updates_stages_and_drops_finished_or_reassigned_ones() {
        let mut t = JobTable::new(ME);
        t.apply_chain(&id(1), &chain_job(1, "matched", ME))
            .expect("apply");
        t.apply_chain(&id(2), &chain_job(2, "committed", ME))
            .expect("apply");
        t.apply_chain(&id(3), &chain_job(3, "accepted", ME))
            .expect("apply");
        t.apply_chain(&id(9), &chain_job(9, "accepted", ME))
            .expect("apply");
        // While the daemon was down: job 1 was accepted, job 2 settled and finalised, job 3 failed and went
        // to another provider, job 4 was matched to us; job 9 is unknown to the chain.
        let chain = vec![
            chain_job(1, "accepted", ME),
            chain_job(2, "final", ME),
            chain_job(3, "matched", "lode1other"),
            chain_job(4, "matched", ME),
        ];
        let r = t.reconcile(&chain).expect("reconcile");
        assert_eq!(r.added, vec![id(4)]);
        assert_eq!(r.updated, vec![id(1)]);
        assert_eq!(r.removed, vec![id(2), id(3), id(9)]);
        let stages: Vec<(String, Stage)> =
            t.jobs.iter().map(|(k, e)| (k.clone(), e.stage)).collect();
        assert_eq!(
            stages,
            vec![(id(1), Stage::Accepted), (id(4), Stage::Matched)]
        );
    }

    #[test]
    fn answered_challenge_tiles_survive_a_refresh_of_the_same_challenge_only() {
        let mut t = JobTable::new(ME);
        let mut j = chain_job(1, "settled", ME);
        j.challenge_tiles = vec![1, 2, 3];
        t.apply_chain(&id(1), &j).expect("apply");
        t.jobs.get_mut(&id(1)).expect("entry").answered = vec![2];
        t.apply_chain(&id(1), &j).expect("refresh");
        assert_eq!(t.jobs[&id(1)].answered, vec![2]);
        assert_eq!(
            t.jobs[&id(1)].action(10),
            Some(Action::Reveal {
                tiles: vec![1, 3],
                challenge: true
            })
        );
        j.challenge_tiles = vec![5];
        t.apply_chain(&id(1), &j).expect("new challenge");
        assert!(t.jobs[&id(1)].answered.is_empty());
    }

    #[test]
    fn actions_follow_the_stage_and_stop_at_a_passed_deadline() {
        let mut t = JobTable::new(ME);
        let mut j = chain_job(1, "revealing", ME);
        j.sampled_tiles = vec![0, 3, 5];
        j.revealed_tiles = vec![3];
        t.apply_chain(&id(1), &j).expect("apply");
        let e = &t.jobs[&id(1)];
        assert_eq!(
            e.action(49),
            Some(Action::Reveal {
                tiles: vec![0, 5],
                challenge: false
            })
        );
        assert_eq!(e.action(50), None, "a reveal sent now would land too late");
        let mut m = e.clone();
        m.stage = Stage::Matched;
        assert_eq!(m.action(3), Some(Action::Work { accept: true }));
        m.stage = Stage::Accepted;
        assert_eq!(m.action(3), Some(Action::Work { accept: false }));
        m.stage = Stage::Committed;
        assert_eq!(m.action(3), None);
        // A settled job with no challenge needs nothing.
        m.stage = Stage::Settled;
        assert_eq!(m.action(3), None);
    }

    #[test]
    fn a_chain_job_with_a_malformed_root_is_an_error_not_an_entry() {
        let mut t = JobTable::new(ME);
        let mut j = chain_job(1, "matched", ME);
        j.a_root = vec![1; 5];
        assert!(t.apply_chain(&id(1), &j).is_err());
        assert!(t.jobs.is_empty());
    }
}
