//! Sweeps: one experiment file, several runs (variants × seeds), one summary.

use crate::config::ExperimentConfig;
use crate::error::Error;
use std::path::PathBuf;

/// One run of a sweep.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// Variant label (empty when the file has no variants).
    pub label: String,
    /// The run's seed.
    pub seed: u64,
    /// Output sub-directory relative to the sweep's directory (empty for a single run).
    pub dir: PathBuf,
    /// The run's resolved config (no variants or seeds left in it).
    pub config: ExperimentConfig,
}

/// Lower-case, `[a-z0-9_-]` only: a label as a directory name.
pub fn slug(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect();
    let s = s.split('_').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("_");
    if s.is_empty() { "run".into() } else { s }
}

/// Expand a file into its runs. Overrides apply to every run, after the variant's own.
pub fn expand(text: &str, overrides: &[String]) -> Result<Vec<RunSpec>, Error> {
    let base = ExperimentConfig::from_toml(text, overrides)?;
    let seeds = if base.seeds.is_empty() { vec![base.seed] } else { base.seeds.clone() };
    let variants = if base.variant.is_empty() {
        vec![crate::config::Variant { label: String::new(), set: Vec::new() }]
    } else {
        base.variant.clone()
    };
    let mut labels: Vec<String> = variants.iter().map(|v| slug(&v.label)).collect();
    labels.sort();
    if labels.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::Config {
            key: "variant".into(),
            problem: "two variants have the same label".into(),
        });
    }
    let mut runs = Vec::new();
    for v in &variants {
        for &seed in &seeds {
            let mut o = v.set.clone();
            o.extend(overrides.iter().cloned());
            o.push(format!("seed={seed}"));
            let mut config = ExperimentConfig::from_toml(text, &o).map_err(|e| match e {
                Error::Config { key, problem } => Error::Config {
                    key,
                    problem: format!("{problem} (in variant \"{}\")", v.label),
                },
                other => other,
            })?;
            config.variant.clear();
            config.seeds.clear();
            let mut dir = PathBuf::new();
            if !v.label.is_empty() {
                dir.push(slug(&v.label));
            }
            if seeds.len() > 1 {
                dir.push(format!("seed{seed}"));
            }
            runs.push(RunSpec { label: v.label.clone(), seed, dir, config });
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_times_seeds() {
        let text = r#"
seeds = [1, 2]
[[variant]]
label = "24 FO"
set = ["population.fo=24", "population.zo=0"]
[[variant]]
label = "1 ZO"
set = ["population.fo=0", "population.zo=1"]
"#;
        let runs = expand(text, &["steps=7".into()]).unwrap();
        assert_eq!(runs.len(), 4);
        assert_eq!(runs[0].dir, PathBuf::from("24_fo/seed1"));
        assert_eq!(
            (runs[0].config.population.fo, runs[0].config.seed, runs[0].config.steps),
            (24, 1, 7)
        );
        assert_eq!((runs[3].config.population.zo, runs[3].config.seed), (1, 2));
        assert!(runs.iter().all(|r| r.config.variant.is_empty() && r.config.seeds.is_empty()));
        let bad = "[[variant]]\nlabel = \"x\"\nset = [\"fo.lr=-1\"]";
        let e = expand(bad, &[]).unwrap_err().to_string();
        assert!(e.contains("fo.lr") && e.contains("variant \"x\""), "{e}");
        let single = expand("", &[]).unwrap();
        assert_eq!((single.len(), single[0].dir.as_os_str().is_empty()), (1, true));
    }
}
