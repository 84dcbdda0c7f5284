//! The strategies `[search] strategy` and `--strategy` name, in one registry: a strategy is a
//! module with a `strategy(&mut Context)` function and one line in [`strategies!`] below, which
//! makes it a name the config and the command line accept (anything else fails when parsed,
//! listing these names).

use super::paper::Budgets;
use super::{descent, independent, nsga2, paper, uniform, Search, Space};
use crate::fixed::Assignment;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// What a strategy works with. The uniform sweep has run already (every run's reference).
pub struct Context<'c, 'e> {
    pub search: &'c mut Search<'e>,
    pub space: &'c Space<'c>,
    /// The paper's loss schedule, scaled to the search target.
    pub budgets: Budgets,
    /// The uniform b-bit no-clip assignment.
    pub uniform: &'c dyn Fn(u32) -> Assignment,
    /// The run's random numbers, seeded from the config's (or `--seed`'s) seed.
    pub rng: &'c mut ChaCha8Rng,
    /// Remarks for summary.json's `notes`.
    pub notes: Vec<String>,
}

macro_rules! strategies {
    ($($(#[$doc:meta])* $variant:ident => $module:ident),* $(,)?) => {
        /// A search strategy (docs/architecture.md, "Adding a strategy").
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
        #[serde(rename_all = "lowercase")]
        #[value(rename_all = "lowercase")]
        pub enum Strategy {
            $($(#[$doc])* $variant),*
        }

        impl Strategy {
            /// Propose and score assignments until the strategy is done or the budget is spent.
            pub fn run(self, ctx: &mut Context) {
                match self {
                    $(Strategy::$variant => $module::strategy(ctx)),*
                }
            }
        }
    };
}

strategies! {
    /// The uniform b-bit sweep alone.
    Uniform => uniform,
    /// The seed paper's sequential per-layer search.
    Paper => paper,
    /// The cost-weighted paper search, refined one move at a time.
    Descent => descent,
    /// Each tensor lowered alone, then combined (what the paper warns against).
    Independent => independent,
    /// NSGA-II seeded with the paper and descent points.
    Nsga2 => nsga2,
}

impl Strategy {
    /// The name the config and the command line use.
    #[must_use]
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).expect("no strategy is hidden").get_name().to_string()
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Strategy;
    use clap::ValueEnum;

    #[test]
    fn config_and_command_line_names_agree() {
        for s in Strategy::value_variants() {
            let toml: Strategy = serde_json::from_value(serde_json::json!(s.name())).unwrap();
            assert_eq!(toml, *s);
        }
        let names: Vec<String> = Strategy::value_variants().iter().map(|s| s.name()).collect();
        assert_eq!(names, ["uniform", "paper", "descent", "independent", "nsga2"]);
    }
}
