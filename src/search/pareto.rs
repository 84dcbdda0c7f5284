//! The Pareto archive: the non-dominated set over (loss, cost objectives), all minimised.

/// `a` dominates `b`: no worse in every objective and better in one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        if x < y {
            better = true;
        }
    }
    better
}

/// Indices of the non-dominated points. Exact duplicates keep only their first occurrence.
pub fn front(points: &[Vec<f64>]) -> Vec<usize> {
    let mut out = Vec::new();
    'outer: for (i, p) in points.iter().enumerate() {
        for (j, q) in points.iter().enumerate() {
            if dominates(q, p) || (j < i && q == p) {
                continue 'outer;
            }
        }
        out.push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dominance() {
        assert!(dominates(&[1.0, 1.0], &[2.0, 1.0]));
        assert!(!dominates(&[1.0, 1.0], &[1.0, 1.0]), "equal points do not dominate");
        assert!(!dominates(&[1.0, 3.0], &[2.0, 1.0]), "a trade-off is not dominance");
    }

    #[test]
    fn front_keeps_trade_offs_drops_dominated_and_duplicates() {
        let pts = vec![
            vec![0.0, 10.0], // 0: front
            vec![1.0, 5.0],  // 1: front
            vec![1.0, 6.0],  // 2: dominated by 1
            vec![1.0, 5.0],  // 3: duplicate of 1
            vec![2.0, 5.0],  // 4: dominated by 1 (tie in cost, worse loss)
            vec![5.0, 1.0],  // 5: front
        ];
        assert_eq!(front(&pts), vec![0, 1, 5]);
    }

    #[test]
    fn empty_and_single() {
        assert!(front(&[]).is_empty());
        assert_eq!(front(&[vec![3.0]]), vec![0]);
    }
}
