//! Pure: the trials of a hyperparameter search. Grid search walks the cartesian product of the
//! listed values in order; random search draws from the values or ranges with a seeded generator,
//! so the same spec always gives the same trials (and a restarted operator the same plan).

use modelops_api::trainingjob::{
    Goal, ParameterValue, Scale, SearchParameter, SearchSpec, SearchStrategy, TrialStatus,
    TunableParameter,
};
use std::collections::BTreeMap;

/// The hyperparameters of one trial, by name.
pub type TrialParameters = BTreeMap<String, ParameterValue>;

/// A small, seeded generator (SplitMix64): deterministic and good enough to spread trials.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Whether a parameter takes whole numbers.
fn integral(name: TunableParameter) -> bool {
    matches!(name, TunableParameter::BatchSize | TunableParameter::Epochs)
}

fn number(name: TunableParameter, value: f64) -> ParameterValue {
    ParameterValue::Number(if integral(name) { value.round() } else { value })
}

/// The listed options of a parameter (values or choices), if it lists them.
fn options(parameter: &SearchParameter) -> Option<Vec<ParameterValue>> {
    if let Some(values) = &parameter.values {
        return Some(values.iter().map(|v| number(parameter.name, *v)).collect());
    }
    parameter.choices.as_ref().map(|choices| {
        choices
            .iter()
            .map(|c| ParameterValue::Text(c.as_str().to_owned()))
            .collect()
    })
}

/// Draws one value of a parameter.
fn draw(parameter: &SearchParameter, rng: &mut SplitMix64) -> ParameterValue {
    if let Some(options) = options(parameter) {
        let index = (rng.unit() * options.len() as f64) as usize;
        return options[index.min(options.len() - 1)].clone();
    }
    let (min, max) = (parameter.min.unwrap_or(0.0), parameter.max.unwrap_or(1.0));
    let u = rng.unit();
    let value = match parameter.scale.unwrap_or_default() {
        Scale::Linear => min + u * (max - min),
        Scale::Log => (min.ln() + u * (max.ln() - min.ln())).exp(),
    };
    number(parameter.name, value)
}

/// The trials of a search, at most `maxTrials`.
pub fn trials(search: &SearchSpec, seed: i64) -> Vec<TrialParameters> {
    let max = search.max_trials.max(1) as usize;
    match search.strategy {
        SearchStrategy::Grid => {
            let mut grid: Vec<TrialParameters> = vec![BTreeMap::new()];
            for parameter in &search.parameters {
                let values = options(parameter).unwrap_or_default();
                grid = grid
                    .into_iter()
                    .flat_map(|trial| {
                        values.iter().map(move |value| {
                            let mut trial = trial.clone();
                            trial.insert(parameter.name.as_str().to_owned(), value.clone());
                            trial
                        })
                    })
                    .collect();
            }
            grid.truncate(max);
            grid
        }
        SearchStrategy::Random => {
            let mut rng = SplitMix64(seed as u64 ^ 0x6D6F_6465_6C6F_7073);
            (0..max)
                .map(|_| {
                    search
                        .parameters
                        .iter()
                        .map(|p| (p.name.as_str().to_owned(), draw(p, &mut rng)))
                        .collect()
                })
                .collect()
        }
    }
}

/// The best finished trial by the objective, if any trial finished with a value.
pub fn best(trials: &[TrialStatus], goal: Goal) -> Option<&TrialStatus> {
    trials
        .iter()
        .filter(|t| t.objective.is_some_and(f64::is_finite) && t.model_digest.is_some())
        .max_by(|a, b| {
            let (a, b) = (a.objective.unwrap(), b.objective.unwrap());
            match goal {
                Goal::Maximize => a.total_cmp(&b),
                Goal::Minimize => b.total_cmp(&a),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelops_api::trainingjob::{Objective, OptimizerType, TrainingPhase};

    fn parameter(name: TunableParameter) -> SearchParameter {
        SearchParameter {
            name,
            values: None,
            choices: None,
            min: None,
            max: None,
            scale: None,
        }
    }

    fn search(
        strategy: SearchStrategy,
        parameters: Vec<SearchParameter>,
        max_trials: i32,
    ) -> SearchSpec {
        SearchSpec {
            strategy,
            parameters,
            max_trials,
            parallelism: 2,
            objective: Objective::default(),
        }
    }

    #[test]
    fn grid_is_the_cartesian_product_in_order() {
        let lr = SearchParameter {
            values: Some(vec![0.1, 0.01]),
            ..parameter(TunableParameter::LearningRate)
        };
        let opt = SearchParameter {
            choices: Some(vec![OptimizerType::Adam, OptimizerType::Sgd]),
            ..parameter(TunableParameter::Optimizer)
        };
        let trials = trials(&search(SearchStrategy::Grid, vec![lr, opt], 10), 1);
        assert_eq!(trials.len(), 4);
        assert_eq!(trials[0]["learningRate"], ParameterValue::Number(0.1));
        assert_eq!(trials[0]["optimizer"], ParameterValue::Text("adam".into()));
        assert_eq!(trials[1]["optimizer"], ParameterValue::Text("sgd".into()));
        assert_eq!(trials[3]["learningRate"], ParameterValue::Number(0.01));
    }

    #[test]
    fn grid_stops_at_max_trials() {
        let lr = SearchParameter {
            values: Some(vec![0.1, 0.01, 0.001]),
            ..parameter(TunableParameter::LearningRate)
        };
        assert_eq!(
            trials(&search(SearchStrategy::Grid, vec![lr], 2), 1).len(),
            2
        );
    }

    #[test]
    fn random_is_seeded_in_range_and_rounds_integers() {
        let lr = SearchParameter {
            min: Some(1e-4),
            max: Some(1e-1),
            scale: Some(Scale::Log),
            ..parameter(TunableParameter::LearningRate)
        };
        let batch = SearchParameter {
            min: Some(16.0),
            max: Some(128.0),
            ..parameter(TunableParameter::BatchSize)
        };
        let spec = search(SearchStrategy::Random, vec![lr, batch], 20);
        let a = trials(&spec, 7);
        assert_eq!(a, trials(&spec, 7));
        assert_ne!(a, trials(&spec, 8));
        for trial in &a {
            let ParameterValue::Number(lr) = trial["learningRate"] else {
                panic!()
            };
            assert!((1e-4..=1e-1).contains(&lr), "{lr}");
            let ParameterValue::Number(batch) = trial["batchSize"] else {
                panic!()
            };
            assert_eq!(batch, batch.round());
            assert!((16.0..=128.0).contains(&batch));
        }
    }

    #[test]
    fn best_follows_the_goal() {
        let trial = |index, objective: f64| TrialStatus {
            index,
            parameters: BTreeMap::new(),
            phase: TrainingPhase::Succeeded,
            objective: Some(objective),
            model_digest: Some(format!("sha256:{index}")),
            model: None,
            message: None,
            curves: None,
        };
        let trials = [trial(0, 0.9), trial(1, 0.95), trial(2, 0.5)];
        assert_eq!(best(&trials, Goal::Maximize).unwrap().index, 1);
        assert_eq!(best(&trials, Goal::Minimize).unwrap().index, 2);
    }
}
