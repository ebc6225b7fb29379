//! The lift of a workflow over its holdout: the difference of two proportions (the goal
//! rate of the treated runs minus that of the held-out runs) with its 95% interval.
//!
//! The interval is Wald's for a difference of independent proportions:
//! `d ± 1.96 · sqrt(p₁(1−p₁)/n₁ + p₀(1−p₀)/n₀)`. It assumes the two groups are
//! independent samples (the stable hash makes the holdout a fair coin per customer, but a
//! customer who enters many times is counted once per run) and that both are large enough
//! for the normal approximation: here, at least [`MIN_RUNS`] runs on each side and at
//! least [`MIN_OUTCOMES`] goals reached and not reached on each. Below that there is no
//! number, and the reason says what is missing.

use serde::Serialize;

/// Fewest runs on each side for a lift.
pub const MIN_RUNS: u64 = 30;
/// Fewest goals reached, and not reached, on each side.
pub const MIN_OUTCOMES: u64 = 5;

/// The normal quantile of a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The lift as the stats API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Lift {
    pub treated_rate: f64,
    pub holdout_rate: f64,
    pub difference: f64,
    pub ci95: [f64; 2],
}

/// One side: runs and those of them that reached the goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Side {
    pub runs: u64,
    pub reached: u64,
}

impl Side {
    fn rate(self) -> f64 {
        if self.runs == 0 {
            0.0
        } else {
            self.reached as f64 / self.runs as f64
        }
    }

    /// What this side lacks for the normal approximation, if anything.
    fn lacks(self, name: &str) -> Option<String> {
        if self.runs < MIN_RUNS {
            return Some(format!("{name} has {} runs, fewer than {MIN_RUNS}", self.runs));
        }
        let missed = self.runs - self.reached;
        if self.reached < MIN_OUTCOMES || missed < MIN_OUTCOMES {
            return Some(format!(
                "{name} has {} goals reached and {missed} not, fewer than {MIN_OUTCOMES} of either",
                self.reached
            ));
        }
        None
    }
}

/// The lift of `treated` over `holdout`, or why there is none.
pub fn lift(treated: Side, holdout: Side) -> Result<Lift, String> {
    if holdout.runs == 0 && treated.runs > 0 {
        return Err("no run was held out: give the workflow a holdout to measure its lift".to_owned());
    }
    if let Some(why) = treated
        .lacks("the treated side")
        .or_else(|| holdout.lacks("the holdout"))
    {
        return Err(format!("too few runs for an interval: {why}"));
    }
    let (p1, p0) = (treated.rate(), holdout.rate());
    let se = (p1 * (1.0 - p1) / treated.runs as f64 + p0 * (1.0 - p0) / holdout.runs as f64).sqrt();
    let difference = p1 - p0;
    Ok(Lift {
        treated_rate: p1,
        holdout_rate: p0,
        difference,
        ci95: [difference - Z95 * se, difference + Z95 * se],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(runs: u64, reached: u64) -> Side {
        Side { runs, reached }
    }

    #[test]
    fn the_interval_is_walds_for_a_difference_of_proportions() {
        // 120 of 1,000 treated, 80 of 1,000 held out: d = 0.04,
        // se = sqrt(.12·.88/1000 + .08·.92/1000) = 0.0133866, ci = d ± 0.0262372
        let l = lift(side(1000, 120), side(1000, 80)).expect("a lift");
        assert!((l.treated_rate - 0.12).abs() < 1e-12);
        assert!((l.holdout_rate - 0.08).abs() < 1e-12);
        assert!((l.difference - 0.04).abs() < 1e-12);
        assert!((l.ci95[0] - 0.013_763).abs() < 1e-5, "{:?}", l.ci95);
        assert!((l.ci95[1] - 0.066_237).abs() < 1e-5, "{:?}", l.ci95);
    }

    #[test]
    fn too_few_runs_say_why_instead_of_a_number() {
        let few = lift(side(29, 10), side(500, 50)).expect_err("too few");
        assert!(few.contains("29 runs"), "{few}");
        let rare = lift(side(500, 50), side(100, 4)).expect_err("too rare");
        assert!(rare.contains("the holdout has 4 goals reached"), "{rare}");
        let none = lift(side(500, 50), side(0, 0)).expect_err("no holdout");
        assert!(none.contains("no run was held out"), "{none}");
    }
}
