//! What hdo knows, for `hdo list`: every model, estimator, protocol and data set by its config
//! name, with one line on it.

use crate::config::DatasetKind;
use crate::estimator::EstimatorKind;
use hdo_gossip::ProtocolConfig;
use hdo_models::ModelConfig;

/// One entry: the config key it goes in, its value there, and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `model.kind`, `zo.estimator`, `protocol.kind`, `protocol.topology` or `data.dataset`.
    pub key: &'static str,
    /// The value to write there.
    pub name: &'static str,
    /// One line on it.
    pub summary: &'static str,
}

/// Every entry, grouped by key.
pub fn entries() -> Vec<Entry> {
    let table = |key, kinds: &[(&'static str, &'static str)]| {
        kinds.iter().map(move |&(name, summary)| Entry { key, name, summary }).collect::<Vec<_>>()
    };
    let mut out = table("model.kind", &ModelConfig::KINDS);
    out.extend(EstimatorKind::ALL.iter().map(|e| Entry {
        key: if e.is_zeroth_order() { "zo.estimator" } else { "fo.estimator" },
        name: e.name(),
        summary: e.summary(),
    }));
    out.extend(table("protocol.kind", ProtocolConfig::KINDS));
    out.extend(table("protocol.topology", &hdo_gossip::topology::TopologyKind::KINDS));
    out.extend(table("data.dataset", &DatasetKind::KINDS));
    out.extend(table("objective.kind", hdo_models::ObjectiveConfig::KINDS));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ExperimentConfig;

    /// The names serde accepts for a `kind`-style key, read from its error for an unknown value
    /// ("expected one of `a`, `b`" or "expected `a` or `b`"): the registration itself, which the
    /// lists must cover.
    fn registered(key: &str, extra: &[&str]) -> Vec<String> {
        let mut sets = vec![format!("{key}=\"no such thing\"")];
        sets.extend(extra.iter().map(|s| s.to_string()));
        let e = ExperimentConfig::from_toml("", &sets).unwrap_err().to_string();
        let (_, list) = e.split_once(", expected").unwrap_or(("", ""));
        let list = list.lines().next().unwrap_or_default();
        list.split('`').skip(1).step_by(2).map(str::to_string).collect()
    }

    /// A model, protocol, data set or estimator added to its enum but not to `hdo list` fails here.
    #[test]
    fn the_lists_cover_every_registered_name() {
        let entries = entries();
        for (key, extra) in [
            ("model.kind", &[][..]),
            ("protocol.kind", &[]),
            ("protocol.topology", &["protocol.kind=\"dpsgd\""]),
            ("data.dataset", &[]),
            ("zo.estimator", &[]),
        ] {
            let names = registered(key, extra);
            assert!(names.len() >= 2, "{key}: {names:?}");
            for name in names {
                assert!(
                    entries.iter().any(|e| e.name == name),
                    "{key} = {name} is not in hdo list"
                );
            }
        }
    }

    /// Every listed value is accepted where the list says it goes.
    #[test]
    fn every_entry_is_a_valid_config_value() {
        let entries = entries();
        assert!(entries.len() >= 4 + 6 + 4 + 2, "{entries:?}");
        for e in entries {
            let mut sets = vec![format!("{}=\"{}\"", e.key, e.name), "zo.nu=1e-2".into()];
            if e.key == "protocol.topology" {
                sets.push("protocol.kind=\"dpsgd\"".into());
            }
            match e.name {
                "transformer" => sets.push("data.dataset=\"brackets\"".into()),
                // HO-SGD workers are FO nodes
                "hosgd" => sets.push("population.zo=0".into()),
                "libsvm" => sets.push("data.train_file=\"a9a\"".into()),
                "cifar10" => sets.push("data.dir=\"cifar-10-batches-bin\"".into()),
                _ => {}
            }
            let c = ExperimentConfig::from_toml("", &sets);
            assert!(c.is_ok(), "{}={}: {:?}", e.key, e.name, c.err());
        }
    }
}
