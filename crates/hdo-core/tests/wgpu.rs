//! The wgpu path: a short hybrid run on `device = "wgpu"` agrees with the CPU (flex) run within
//! float tolerance. Needs a wgpu adapter, so it is ignored by default; CI runs it on the Mesa
//! lavapipe software Vulkan driver:
//!
//! ```text
//! apt-get install mesa-vulkan-drivers        # or a real GPU driver
//! XDG_RUNTIME_DIR=/tmp CUBECL_AUTOTUNE_LEVEL=minimal cargo test --release --workspace --test wgpu -- --ignored
//! ```
//!
//! Initial weights, data order and every random direction are generated on the host, so both
//! devices see the same numbers; only float reduction order differs.

#![allow(clippy::unwrap_used)] // tests may panic on setup failures

mod common;

use hdo_core::Experiment;

/// Run the tiny hybrid config (1 FO, 1 ZO) on `device` with `extra` keys.
fn run(device: &str, extra: &[&str]) -> Vec<hdo_core::metrics::Record> {
    run_with(device, 1, extra)
}

/// The tiny config with 1 FO and `zo` ZO nodes.
fn run_with(device: &str, zo: usize, extra: &[&str]) -> Vec<hdo_core::metrics::Record> {
    let dir = tempfile::tempdir().unwrap();
    let dev = format!("device=\"{device}\"");
    let mut keys =
        vec![dev.as_str(), "steps=4", "eval_every=2", "data.eval_limit=200", "fo.lr=0.05"];
    keys.extend(extra);
    Experiment::new(common::tiny(1, zo, &keys)).unwrap().run(dir.path(), &mut |_| {}).unwrap()
}

fn assert_agree(cpu: &[hdo_core::metrics::Record], gpu: &[hdo_core::metrics::Record]) {
    assert_eq!(cpu.len(), gpu.len());
    for (c, g) in cpu.iter().zip(gpu) {
        for (name, a, b) in [
            ("mean_val_loss", c.mean_val_loss, g.mean_val_loss),
            ("mean_model_val_loss", c.mean_model_val_loss, g.mean_model_val_loss),
            ("consensus", c.consensus, g.consensus),
        ] {
            assert!(
                (a - b).abs() <= 1e-3 * a.abs().max(1e-3),
                "round {}: {name} cpu {a} vs wgpu {b}",
                c.round
            );
        }
        assert_eq!(
            (c.forward_passes, c.backward_passes, c.bytes_sent),
            (g.forward_passes, g.backward_passes, g.bytes_sent)
        );
    }
}

#[test]
#[ignore = "needs a wgpu adapter (GPU, or mesa-vulkan-drivers' lavapipe)"]
fn wgpu_run_agrees_with_cpu_run() {
    assert_agree(&run("cpu", &[]), &run("wgpu", &[]));
}

/// The stacked fast path on the GPU (grouped convolutions, batched matrix products, batch norm
/// over member-major channels) against one-at-a-time evaluation on the CPU.
#[test]
#[ignore = "needs a wgpu adapter (GPU, or mesa-vulkan-drivers' lavapipe)"]
fn stacked_cnn_on_wgpu_agrees_with_one_at_a_time_on_cpu() {
    let cnn = ["model.kind=\"cnn\"", "model.channels=[2,3,4]", "model.hidden=[8]", "zo.nu=1e-2"];
    let stacked: Vec<&str> = cnn.iter().copied().chain(["zo.stack=4"]).collect();
    assert_agree(&run("cpu", &cnn), &run("wgpu", &stacked));
}

/// Stacked forward mode on the GPU (one primal pass, `K` tangents) against one direction at a
/// time on the CPU.
#[test]
#[ignore = "needs a wgpu adapter (GPU, or mesa-vulkan-drivers' lavapipe)"]
fn stacked_forward_gradient_on_wgpu_agrees_with_cpu() {
    let cnn = [
        "model.kind=\"cnn\"",
        "model.channels=[2,3,4]",
        "model.hidden=[8]",
        "zo.estimator=\"forward_gradient\"",
    ];
    let stacked: Vec<&str> = cnn.iter().copied().chain(["zo.stack=4"]).collect();
    assert_agree(&run("cpu", &cnn), &run("wgpu", &stacked));
}

/// Cross-node batching on the GPU (three ZO nodes' copies in one pass, each on its own
/// minibatch) against node-by-node evaluation on the CPU.
#[test]
#[ignore = "needs a wgpu adapter (GPU, or mesa-vulkan-drivers' lavapipe)"]
fn nodes_batched_on_wgpu_agree_with_node_by_node_on_cpu() {
    let cnn = ["model.kind=\"cnn\"", "model.channels=[2,3,4]", "model.hidden=[8]", "zo.nu=1e-2"];
    let batched: Vec<&str> =
        cnn.iter().copied().chain(["zo.stack=4", "zo.batch_nodes=true"]).collect();
    assert_agree(&run_with("cpu", 3, &cnn), &run_with("wgpu", 3, &batched));
}

/// The Transformer stacked on the GPU — forward differences (dropout masks shared by a node's
/// copies) and forward gradients (stacked forward mode: attention, layer norm, GELU, embeddings)
/// — against one at a time on the CPU.
#[test]
#[ignore = "needs a wgpu adapter (GPU, or mesa-vulkan-drivers' lavapipe)"]
fn stacked_transformer_on_wgpu_agrees_with_one_at_a_time_on_cpu() {
    for estimator in ["forward_difference", "forward_gradient"] {
        let est = format!("zo.estimator=\"{estimator}\"");
        let tiny = [
            "data.dataset=\"brackets\"",
            "data.brackets.train=64",
            "data.brackets.validation=32",
            "data.brackets.max_len=8",
            "model.kind=\"transformer\"",
            "data.eval_limit=32",
            "zo.nu=1e-2",
            est.as_str(),
        ];
        let stacked: Vec<&str> = tiny.iter().copied().chain(["zo.stack=4"]).collect();
        assert_agree(&run("cpu", &tiny), &run("wgpu", &stacked));
    }
}
