//! The export's reference datapath (rtl/qdse_layer.sv) replays the golden vectors of the default
//! run's chosen point in Verilator, every Conv / Dense layer bit for bit (the shipped LeNet-5
//! descent run's chosen.toml: `qdse explore` with configs/default.toml chooses the same formats,
//! and a test cannot afford the explore), and of the same point with per-channel weight offsets
//! on three layers (docs/fixed-point.md, "Per-channel weight offsets"); the same checks with a
//! deliberately wrong rounding, or with the per-channel shift ignored, in the module must fail.
//! Skipped with a notice where Verilator is not installed (CI installs it).

mod common;

use std::path::Path;
use std::process::Command;

/// LeNet-5's five Conv / Gemm layers.
const LENET_DATAPATH_LAYERS: usize = 5;

/// The shipped chosen point.
const CHOSEN: &str = "reports/lenet5-fashion-descent/chosen.toml";

/// Export LeNet-5 (configs/default.toml) at `point` with 2 golden samples into `out`; the
/// testbench must pass on every layer.
fn export_and_pass(point: &Path, out: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_qdse"))
        .args(["export", "configs/default.toml", "--samples", "2", "--point"])
        .arg(point)
        .arg("--out")
        .arg(out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success());
    let (pass, log) = common::run_testbench(out, 2);
    assert!(pass, "{log}");
    assert!(log.contains(&format!("of {LENET_DATAPATH_LAYERS} layers over 2 samples")), "{log}");
}

/// Replace `right` with `wrong` in the exported module: the golden vectors must catch it.
/// Returns the testbench's log.
fn plant_and_fail(out: &Path, right: &str, wrong: &str) -> String {
    let sv = out.join("rtl/qdse_layer.sv");
    let text = std::fs::read_to_string(&sv).unwrap();
    assert!(text.contains(right), "'{right}' is not where this test expects it");
    std::fs::write(&sv, text.replace(right, wrong)).unwrap();
    std::fs::remove_dir_all(out.join("rtl/obj")).unwrap();
    let (pass, log) = common::run_testbench(out, 2);
    assert!(!pass && log.contains("MISMATCH"), "'{wrong}' passed:\n{log}");
    log
}

#[test]
fn default_run_chosen_point_passes_in_verilator_and_a_wrong_rounding_fails() {
    if !common::verilator_present("rtl_datapath") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("export");
    export_and_pass(&Path::new(env!("CARGO_MANIFEST_DIR")).join(CHOSEN), &out);
    // Half-even with the tie going the wrong way.
    plant_and_fail(&out, "(r == half && q[0])", "(r == half && !q[0])");
}

/// The chosen point with per-channel weight offsets on conv1, fc1 and fc2 (conv2 and fc3 stay
/// per-tensor, so one testbench drives both kinds).
fn per_channel_point() -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(CHOSEN)).unwrap();
    let mut layer = "";
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if let Some(name) = line.strip_prefix("name = ") {
            layer = name;
        }
        if line == "[layer.weights]" && ["\"/conv1/Conv\"", "\"/fc1/Gemm\"", "\"/fc2/Gemm\""].contains(&layer) {
            out.push_str("per_channel = true\n");
        }
    }
    out
}

#[test]
fn per_channel_offsets_pass_in_verilator_and_ignoring_the_channel_shift_fails() {
    if !common::verilator_present("rtl_datapath") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let point = tmp.path().join("per-channel.toml");
    std::fs::write(&point, per_channel_point()).unwrap();
    let out = tmp.path().join("export");
    export_and_pass(&point, &out);
    // Every per-channel layer is in the testbench, with channels at different offsets.
    let tb = std::fs::read_to_string(out.join("rtl/qdse_tb.sv")).unwrap();
    assert_eq!(tb.matches(".wfrac.mem\", ").count(), 3, "{tb}");
    assert_eq!(tb.matches(".W_OFF_MAX(0)").count(), LENET_DATAPATH_LAYERS - 3, "{tb}");
    // The requantization shift of the layer's coarsest channel for every channel.
    let log = plant_and_fail(&out, "out_sh = OUT_SHIFT + int'(off_q);", "out_sh = OUT_SHIFT;");
    assert!(log.contains("FAIL: "), "{log}");
}
