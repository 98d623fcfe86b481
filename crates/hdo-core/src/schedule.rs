//! Learning-rate schedules: constant, or linear warm-up × cosine annealing.

use crate::config::ScheduleKind;

/// A learning rate as a function of a node's local step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// Base rate.
    pub lr: f64,
    /// Shape.
    pub kind: ScheduleKind,
    /// Linear warm-up steps (0 = none).
    pub warmup: u64,
    /// Horizon of the cosine (the run's rounds).
    pub total: u64,
}

impl LrSchedule {
    /// Rate at local step `t` (0-based): `lr · min(1, (t+1)/warmup) · cos_factor(t)` where
    /// `cos_factor = (1 + cos(π·t/total))/2` for `warmup_cosine` and 1 for `constant` — the two
    /// factors applied together, as the authors' LinearWarmup with CosineAnnealingLR.
    pub fn at(&self, t: u64) -> f64 {
        let warm =
            if self.warmup > 0 { ((t + 1) as f64 / self.warmup as f64).min(1.0) } else { 1.0 };
        let shape = match self.kind {
            ScheduleKind::Constant => 1.0,
            ScheduleKind::WarmupCosine => {
                let p = (t.min(self.total) as f64) / self.total.max(1) as f64;
                0.5 * (1.0 + (std::f64::consts::PI * p).cos())
            }
        };
        self.lr * warm * shape
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_zero() {
        let s = LrSchedule { lr: 0.1, kind: ScheduleKind::WarmupCosine, warmup: 50, total: 1000 };
        assert!((s.at(0) - 0.1 * (1.0 / 50.0) * 1.0).abs() < 1e-6);
        assert!(
            (s.at(24) - 0.1 * 0.5 * 0.5 * (1.0 + (std::f64::consts::PI * 0.024).cos())).abs()
                < 1e-12
        );
        assert!((s.at(500) - 0.05).abs() < 1e-12);
        assert!(s.at(1000).abs() < 1e-12);
        let c = LrSchedule { lr: 0.01, kind: ScheduleKind::Constant, warmup: 0, total: 10 };
        assert_eq!(c.at(0), 0.01);
        assert_eq!(c.at(99), 0.01);
    }
}
