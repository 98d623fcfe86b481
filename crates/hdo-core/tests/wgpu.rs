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

#[test]
#[ignore = "needs a wgpu adapter (GPU, or mesa-vulkan-drivers' lavapipe)"]
fn wgpu_run_agrees_with_cpu_run() {
    let run = |device: &str| {
        let dir = tempfile::tempdir().unwrap();
        let dev = format!("device=\"{device}\"");
        let cfg = common::tiny(
            1,
            1,
            &[&dev, "steps=4", "eval_every=2", "data.eval_limit=200", "fo.lr=0.05"],
        );
        Experiment::new(cfg).unwrap().run(dir.path(), &mut |_| {}).unwrap()
    };
    let cpu = run("cpu");
    let gpu = run("wgpu");
    assert_eq!(cpu.len(), gpu.len());
    for (c, g) in cpu.iter().zip(&gpu) {
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
