//! Paired comparison of a quantized network with the float one on the same images: the counts
//! an accuracy loss is made of, and the one-sided bound the chosen point must keep within its
//! budget (docs/data-roles.md, "The confidence bound").

use crate::config::LossKind;
use statrs::distribution::{Beta, ContinuousCDF};

/// Per-image outcomes of float and fixed predictions against the labels, and (when the
/// outputs were compared, not only the classes) two continuous measures of output fidelity.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Paired {
    pub n: usize,
    /// Images the float network gets right.
    pub float_correct: usize,
    /// Float right, fixed wrong: each one costs accuracy.
    pub lost: usize,
    /// Float wrong, fixed right: each one gives accuracy back.
    pub gained: usize,
    /// Images whose top-1 class differs between the two (lost, gained and both-wrong changes).
    pub flips: usize,
    /// Sum over images of KL(softmax(float) || softmax(fixed)), in nats.
    pub kl_sum: f64,
    /// Sum over images of p_float(label) - p_fixed(label) (softmax probabilities): the expected
    /// accuracy lost if each network's softmax were its probability of being right.
    pub soft_sum: f64,
}

/// One image's comparison: class outcomes and fidelity of the fixed output `q` (logits)
/// against the float softmax `p`.
pub fn compare(p: &[f64], float_class: usize, q: impl Iterator<Item = f64> + Clone, label: usize) -> Paired {
    let max = q.clone().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = q.clone().map(|v| (v - max).exp()).sum();
    let log_q = |v: f64| v - max - z.ln();
    let mut kl = 0.0;
    let mut fixed_class = 0;
    let mut best = f64::NEG_INFINITY;
    let mut q_label = 0.0;
    for (k, v) in q.enumerate() {
        // Ties go to the lowest index, as the engines' argmax.
        if v > best {
            best = v;
            fixed_class = k;
        }
        if k == label {
            q_label = log_q(v).exp();
        }
        if p[k] > 0.0 {
            kl += p[k] * (p[k].ln() - log_q(v));
        }
    }
    let (f, x) = (float_class == label, fixed_class == label);
    Paired {
        n: 1,
        float_correct: usize::from(f),
        lost: usize::from(f && !x),
        gained: usize::from(!f && x),
        flips: usize::from(float_class != fixed_class),
        kl_sum: kl.max(0.0),
        soft_sum: p.get(label).copied().unwrap_or(0.0) - q_label,
    }
}

/// Softmax of `logits`, in f64.
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let e: Vec<f64> = logits.iter().map(|&v| (f64::from(v) - max).exp()).collect();
    let z: f64 = e.iter().sum();
    e.into_iter().map(|v| v / z).collect()
}

impl std::ops::Add for Paired {
    type Output = Paired;
    fn add(self, o: Paired) -> Paired {
        Paired {
            n: self.n + o.n,
            float_correct: self.float_correct + o.float_correct,
            lost: self.lost + o.lost,
            gained: self.gained + o.gained,
            flips: self.flips + o.flips,
            kl_sum: self.kl_sum + o.kl_sum,
            soft_sum: self.soft_sum + o.soft_sum,
        }
    }
}

impl std::iter::Sum for Paired {
    fn sum<I: Iterator<Item = Paired>>(iter: I) -> Paired {
        iter.fold(Paired::default(), |a, b| a + b)
    }
}

impl Paired {
    pub fn new(float: &[usize], fixed: &[usize], labels: &[usize]) -> Paired {
        let mut p = Paired { n: labels.len().min(float.len()).min(fixed.len()), ..Paired::default() };
        // Classes only: the fidelity measures stay zero.
        for ((&f, &q), &l) in float.iter().zip(fixed).zip(labels) {
            p.float_correct += usize::from(f == l);
            p.lost += usize::from(f == l && q != l);
            p.gained += usize::from(f != l && q == l);
            p.flips += usize::from(f != q);
        }
        p
    }

    pub fn float_accuracy(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.float_correct as f64 / self.n as f64
        }
    }

    /// The fixed network's top-1 accuracy on these images.
    pub fn fixed_accuracy(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            (self.float_correct + self.gained - self.lost) as f64 / self.n as f64
        }
    }

    /// The accuracy loss these images show.
    pub fn loss(&self, kind: LossKind) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        self.scale(kind) * (self.lost as f64 - self.gained as f64) / self.n as f64
    }

    /// What turns an absolute loss into `kind` (the float accuracy measured on these images).
    fn scale(&self, kind: LossKind) -> f64 {
        kind.scale(self.float_accuracy())
    }

    /// Fraction of images whose top-1 class differs from the float network's.
    pub fn flip_rate(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.flips as f64 / self.n as f64
        }
    }

    /// Mean KL divergence of the fixed softmax from the float one, in nats.
    pub fn kl(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.kl_sum / self.n as f64
        }
    }

    /// The soft accuracy loss (`soft_sum / n`, as `kind` scales a loss).
    pub fn soft_loss(&self, kind: LossKind) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.scale(kind) * self.soft_sum / self.n as f64
        }
    }

    /// An upper bound on the loss at one-sided `confidence` (in (0, 1)): exact McNemar on the
    /// discordant images. Given `d = lost + gained` discordant images, `lost` is binomial in
    /// `d` with the share `π` of discordant images that cost accuracy, and the loss is
    /// `d (2π - 1) / n`; `π` is bounded by Clopper-Pearson. One pessimistic pseudo-image (float
    /// right, fixed wrong) is added first, so that no observed disagreement still leaves a
    /// one-image margin instead of a bound of zero. The float accuracy a relative loss divides
    /// by is the measured one (the reference, not an estimate). No image: a bound of 1.
    pub fn loss_upper_bound(&self, kind: LossKind, confidence: f64) -> f64 {
        if self.n == 0 {
            return 1.0;
        }
        let d = self.lost + self.gained + 1;
        let pi_hi = clopper_pearson_upper(self.lost + 1, d, 1.0 - confidence);
        let abs = (d as f64 * (2.0 * pi_hi - 1.0)).max(0.0) / self.n as f64;
        self.scale(kind) * abs
    }
}

/// One-sided Clopper-Pearson upper limit for a binomial proportion after `x` successes in `m`
/// trials, at error rate `alpha`: the `p` at which seeing `x` or fewer has probability `alpha`.
pub fn clopper_pearson_upper(x: usize, m: usize, alpha: f64) -> f64 {
    if x >= m {
        return 1.0;
    }
    let beta = Beta::new(x as f64 + 1.0, (m - x) as f64).expect("positive shape parameters");
    beta.inverse_cdf(1.0 - alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(n: usize, lost: usize, gained: usize) -> Paired {
        Paired { n, float_correct: n, lost, gained, flips: lost + gained, ..Paired::default() }
    }

    #[test]
    fn clopper_pearson_hand_cases() {
        // x = 0 of m: 1 - (1 - p)^m = 1 - alpha.
        let p = clopper_pearson_upper(0, 10, 0.05);
        assert!((p - (1.0 - 0.05f64.powf(0.1))).abs() < 1e-9, "{p}");
        // x = 1 of 2: P(X <= 1) = 1 - p^2 = alpha.
        assert!((clopper_pearson_upper(1, 2, 0.05) - 0.95f64.sqrt()).abs() < 1e-9);
        assert_eq!(clopper_pearson_upper(3, 3, 0.05), 1.0);
    }

    #[test]
    fn bound_with_no_discordant_image_is_one_image() {
        // d = 0: the pseudo-image is lost, pi_hi = 1, bound = 1 / n.
        assert!((counts(100, 0, 0).loss_upper_bound(LossKind::Absolute, 0.95) - 0.01).abs() < 1e-12);
        // n = 1: the bound is the whole accuracy.
        assert_eq!(counts(1, 0, 0).loss_upper_bound(LossKind::Absolute, 0.95), 1.0);
        assert_eq!(Paired::default().loss_upper_bound(LossKind::Absolute, 0.95), 1.0);
    }

    #[test]
    fn bound_hand_cases() {
        // One gained image: lost + 1 = 1 of d = 2, pi_hi = sqrt(0.95), bound = 2 (2 pi_hi - 1) / n.
        let b = counts(100, 0, 1).loss_upper_bound(LossKind::Absolute, 0.95);
        assert!((b - 2.0 * (2.0 * 0.95f64.sqrt() - 1.0) / 100.0).abs() < 1e-9, "{b}");
        // Only lost images: pi_hi = 1, bound = (lost + 1) / n.
        assert!((counts(1000, 5, 0).loss_upper_bound(LossKind::Absolute, 0.95) - 0.006).abs() < 1e-12);
        // Many gained images: the bound is clamped at zero, never negative.
        assert_eq!(counts(1000, 0, 40).loss_upper_bound(LossKind::Absolute, 0.95), 0.0);
        // Relative divides by the float accuracy.
        let half = Paired { n: 100, float_correct: 50, ..Paired::default() };
        assert!((half.loss_upper_bound(LossKind::Relative, 0.95) - 0.02).abs() < 1e-12);
    }

    #[test]
    fn bound_covers_the_point_estimate_and_grows_with_confidence() {
        for (lost, gained) in [(20, 10), (3, 3), (50, 0), (7, 30)] {
            let p = counts(2500, lost, gained);
            let b90 = p.loss_upper_bound(LossKind::Absolute, 0.90);
            let b99 = p.loss_upper_bound(LossKind::Absolute, 0.99);
            assert!(b90 >= p.loss(LossKind::Absolute) && b99 >= b90, "{lost}/{gained}: {b90} {b99}");
            // Strictly, unless every discordant image was lost (then pi_hi = 1 at any
            // confidence) or the bound is clamped at zero.
            assert!(gained == 0 || b99 == 0.0 || b99 > b90, "{lost}/{gained}: {b90} {b99}");
        }
    }

    #[test]
    fn compare_one_image() {
        let p = softmax(&[2.0, 0.0, 0.0]);
        // Same logits: no divergence, no flip, no soft loss.
        let same = compare(&p, 0, [2.0, 0.0, 0.0].into_iter(), 0);
        assert!(same.kl_sum.abs() < 1e-12 && same.soft_sum.abs() < 1e-12);
        assert_eq!((same.float_correct, same.lost, same.flips), (1, 0, 0));
        // The fixed output prefers class 1: lost, flipped, KL = sum p ln(p / q).
        let q = [0.0f64, 1.0, 0.0];
        let c = compare(&p, 0, q.iter().copied(), 0);
        assert_eq!((c.lost, c.gained, c.flips), (1, 0, 1));
        let qs = softmax(&[0.0, 1.0, 0.0]);
        let kl: f64 = (0..3).map(|k| p[k] * (p[k] / qs[k]).ln()).sum();
        assert!((c.kl_sum - kl).abs() < 1e-12);
        assert!((c.soft_sum - (p[0] - qs[0])).abs() < 1e-12);
        // Ties go to the lowest index.
        assert_eq!(compare(&p, 0, [1.0f64, 1.0, 0.0].into_iter(), 0).flips, 0);
    }

    #[test]
    fn counts_from_predictions() {
        let labels = [0, 1, 2, 3, 4];
        let float = [0, 1, 2, 9, 9];
        let fixed = [0, 7, 2, 3, 8];
        let p = Paired::new(&float, &fixed, &labels);
        assert_eq!(p, Paired { n: 5, float_correct: 3, lost: 1, gained: 1, flips: 3, ..Paired::default() });
        assert_eq!(p.loss(LossKind::Absolute), 0.0);
        assert!((p.flip_rate() - 0.6).abs() < 1e-12);
    }
}
