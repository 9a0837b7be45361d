//! `lode sim power`: a deterministic simulation of proof-of-useful-compute voting power
//! (`lode_state::modules::staking::power::allocate`) over random stake and compute, one line per epoch,
//! checking at every epoch that the total is exact, the cap holds and the churn limit holds.

use clap::{Args, Subcommand};
use eyre::bail;
use lode_state::modules::staking::{
    params::StakingParams,
    power::{allocate, PowerParams, ValidatorInput, BPS, TOTAL_POWER},
};

#[derive(Debug, Subcommand)]
pub(super) enum SimCommand {
    /// Voting power over random stake and compute: shares per epoch, with the cap and churn checks.
    Power(PowerSimArgs),
}

#[derive(Debug, Args)]
pub(super) struct PowerSimArgs {
    #[arg(long, default_value_t = 100)]
    epochs: u64,
    #[arg(long, default_value_t = 12)]
    validators: u32,
    /// Seed of the generator: the same seed prints the same table.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Default: `staking.compute_weight_bps`'s default.
    #[arg(long)]
    compute_weight_bps: Option<u64>,
    #[arg(long)]
    max_power_bps: Option<u64>,
    #[arg(long)]
    max_churn_bps: Option<u64>,
    /// The least CU the compute pool is divided by.
    #[arg(long, default_value_t = 0)]
    cu_floor: u128,
    /// Print only the summary line.
    #[arg(long)]
    quiet: bool,
}

pub(super) fn run(cmd: &SimCommand) -> eyre::Result<()> {
    match cmd {
        SimCommand::Power(a) => {
            let d = StakingParams::default();
            let p = PowerParams {
                compute_weight_bps: a.compute_weight_bps.unwrap_or(d.compute_weight_bps),
                max_power_bps: a.max_power_bps.unwrap_or(d.max_power_bps),
                max_churn_bps: a.max_churn_bps.unwrap_or(d.max_churn_bps),
                cu_floor: a.cu_floor,
            };
            let report = simulate(a.seed, a.epochs, a.validators, &p, |line| {
                if !a.quiet {
                    super::say!("{line}");
                }
            })?;
            if super::json_output() {
                println!(
                    "{}",
                    serde_json::json!({
                        "epochs": a.epochs,
                        "validators": a.validators,
                        "seed": a.seed,
                        "max_power_bps": p.max_power_bps,
                        "effective_cap_bps_max": report.effective_cap_bps_max,
                        "max_churn_bps": p.max_churn_bps,
                        "largest_share": report.max_power,
                        "largest_move": report.max_moved,
                        "largest_forced_drop": report.max_forced,
                    })
                );
                return Ok(());
            }
            println!(
                "{} epochs, {} validators, seed {}: total exact, cap {} bps (effective {} bps) and churn {} bps \
                 held every epoch; largest share {:.2}%, largest move {:.2}% (largest drop of validators \
                 that lost all stake: {:.2}%)",
                a.epochs,
                a.validators,
                a.seed,
                p.max_power_bps,
                report.effective_cap_bps_max,
                p.max_churn_bps,
                pct(report.max_power),
                pct(report.max_moved),
                pct(report.max_forced),
            );
            Ok(())
        }
    }
}

/// What a run saw at its extremes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SimReport {
    pub max_power: u64,
    pub max_moved: u64,
    /// The largest power taken at once from validators that lost all their stake (outside the limit).
    pub max_forced: u64,
    pub effective_cap_bps_max: u64,
}

/// xorshift64*: a small deterministic generator (the simulation needs reproducibility, not quality).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn pct(p: u64) -> f64 {
    p as f64 * 100.0 / TOTAL_POWER as f64
}

/// Runs `epochs` epochs of `validators` validators: stakes drift by up to ±20% an epoch (one in 40
/// epochs a validator unbonds everything, and one in 10 a validator without stake rebonds), about half
/// have a provider whose CU per epoch varies from nothing to 10^6. Each epoch's powers start from the
/// last. Returns an error naming the epoch where a check fails.
pub(crate) fn simulate(
    seed: u64,
    epochs: u64,
    validators: u32,
    p: &PowerParams,
    mut print: impl FnMut(String),
) -> eyre::Result<SimReport> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let n = validators.max(1);
    let mut stake: Vec<u128> = (0..n)
        .map(|_| u128::from(1 + rng.below(1_000_000)) * 1_000_000)
        .collect();
    let compute: Vec<bool> = (0..n).map(|_| rng.below(2) == 0).collect();
    let mut prev: Vec<(u32, u64)> = Vec::new();
    let mut report = SimReport::default();
    for epoch in 0..epochs {
        for s in stake.iter_mut() {
            if *s > 0 {
                let pct = rng.below(41) as i64 - 20;
                let delta = (*s / 100) * pct.unsigned_abs() as u128;
                *s = if pct < 0 {
                    s.saturating_sub(delta).max(1)
                } else {
                    s.saturating_add(delta)
                };
            }
        }
        if rng.below(40) == 0 {
            let i = rng.below(u64::from(n)) as usize;
            stake[i] = 0;
        }
        if rng.below(10) == 0 {
            let i = rng.below(u64::from(n)) as usize;
            if stake[i] == 0 {
                stake[i] = u128::from(1 + rng.below(1_000_000)) * 1_000_000;
            }
        }
        let inputs: Vec<ValidatorInput<u32>> = (0..n)
            .map(|i| ValidatorInput {
                key: i,
                stake: stake[i as usize],
                verified_cu: if compute[i as usize] {
                    u128::from(rng.below(1_000_001))
                } else {
                    0
                },
            })
            .collect();
        let out = allocate(&inputs, &prev, p);
        let eligible = inputs.iter().filter(|i| i.stake > 0).count() as u64;
        let check = check_epoch(&inputs, &prev, &out, p, eligible);
        let (moved, forced, cap) = match check {
            Ok(v) => v,
            Err(e) => bail!("epoch {epoch}: {e}"),
        };
        report.max_power = report
            .max_power
            .max(out.iter().map(|(_, v)| *v).max().unwrap_or(0));
        if forced == 0 {
            report.max_moved = report.max_moved.max(moved);
        }
        report.max_forced = report.max_forced.max(forced);
        report.effective_cap_bps_max = report.effective_cap_bps_max.max(cap * BPS / TOTAL_POWER);
        let shares: Vec<String> = out
            .iter()
            .map(|(_, v)| format!("{:5.2}", pct(*v)))
            .collect();
        print(format!(
            "epoch {epoch:>4}  moved {:5.2}%{}  shares% {}",
            pct(moved),
            if forced > 0 {
                format!(" ({:.2}% from validators without stake)", pct(forced))
            } else {
                String::new()
            },
            shares.join(" ")
        ));
        prev = out;
    }
    Ok(report)
}

/// The checks of one epoch; returns (power moved, power forced out of validators without stake,
/// effective cap).
fn check_epoch(
    inputs: &[ValidatorInput<u32>],
    prev: &[(u32, u64)],
    out: &[(u32, u64)],
    p: &PowerParams,
    eligible: u64,
) -> eyre::Result<(u64, u64, u64)> {
    let total: u64 = out.iter().map(|(_, v)| v).sum();
    if eligible > 0 && total != TOTAL_POWER {
        bail!("total power {total}, expected {TOTAL_POWER}");
    }
    let cap = (TOTAL_POWER * p.max_power_bps / BPS).max(TOTAL_POWER.div_ceil(eligible.max(1)));
    let prev_of = |k: u32| prev.iter().find(|(pk, _)| *pk == k).map_or(0, |(_, v)| *v);
    for (k, v) in out {
        if *v > cap.max(prev_of(*k)) {
            bail!("validator {k} holds {v}, over the cap {cap}");
        }
        let stake = inputs.iter().find(|i| i.key == *k).map_or(0, |i| i.stake);
        if stake == 0 && *v > 0 {
            bail!("validator {k} has no stake but holds {v}");
        }
    }
    let prev_total: u64 = prev.iter().map(|(_, v)| v).sum();
    let mut up = 0u64;
    let mut forced = 0u64;
    for (k, v) in out {
        let before = prev_of(*k);
        up += v.saturating_sub(before);
        let stake = inputs.iter().find(|i| i.key == *k).map_or(0, |i| i.stake);
        if stake == 0 {
            forced += before;
        }
    }
    let limit = TOTAL_POWER * p.max_churn_bps / BPS;
    if prev_total == TOTAL_POWER && up > limit.max(forced) {
        bail!("{up} power moved, over the churn limit {limit} (forced {forced})");
    }
    Ok((if prev_total == 0 { 0 } else { up }, forced, cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_cap_and_churn_hold_every_epoch_for_many_seeds_and_sizes() {
        for seed in 1..=6 {
            for n in [1u32, 3, 12, 40] {
                let p = PowerParams {
                    compute_weight_bps: 2_000 + 1_000 * (seed % 3),
                    max_power_bps: 1_500,
                    max_churn_bps: 300 + 100 * seed,
                    cu_floor: if seed % 2 == 0 { 2_000_000 } else { 0 },
                };
                let mut lines = Vec::new();
                let r = simulate(seed, 100, n, &p, |l| lines.push(l));
                assert!(r.is_ok(), "seed {seed}, {n} validators: {r:?}");
                assert_eq!(lines.len(), 100);
            }
        }
    }

    #[test]
    fn sim_is_deterministic_and_the_seed_matters() {
        let p = PowerParams {
            compute_weight_bps: 2_000,
            max_power_bps: 2_000,
            max_churn_bps: 500,
            cu_floor: 0,
        };
        let run = |seed| {
            let mut lines = Vec::new();
            simulate(seed, 30, 8, &p, |l| lines.push(l)).map(|_| lines)
        };
        let a = run(7).ok();
        assert!(a.is_some());
        assert_eq!(a, run(7).ok());
        assert_ne!(a, run(8).ok());
    }

    #[test]
    fn sim_checks_catch_a_broken_allocation() {
        let p = PowerParams {
            compute_weight_bps: 0,
            max_power_bps: 5_000,
            max_churn_bps: 100,
            cu_floor: 0,
        };
        let inputs = [
            ValidatorInput {
                key: 0u32,
                stake: 1,
                verified_cu: 0,
            },
            ValidatorInput {
                key: 1,
                stake: 1,
                verified_cu: 0,
            },
        ];
        let prev = [(0u32, 500_000_000u64), (1, 500_000_000)];
        // Too much moved.
        let bad = [(0u32, 300_000_000u64), (1, 700_000_000)];
        assert!(check_epoch(&inputs, &prev, &bad, &p, 2).is_err());
        // Total off by one.
        let bad = [(0u32, 500_000_000u64), (1, 499_999_999)];
        assert!(check_epoch(&inputs, &prev, &bad, &p, 2).is_err());
        assert!(check_epoch(&inputs, &prev, &prev, &p, 2).is_ok());
    }
}
