//! The export's reference datapath (rtl/qdse_layer.sv) replays the golden vectors of the default
//! run's chosen point in Verilator, every Conv / Dense layer bit for bit (the shipped LeNet-5
//! descent run's chosen.toml: `qdse explore` with configs/default.toml chooses the same formats,
//! and a test cannot afford the explore); the same check with a
//! deliberately wrong rounding in the module must fail. Skipped with a notice where Verilator is
//! not installed (CI installs it).

mod common;

use std::process::Command;

/// LeNet-5's five Conv / Gemm layers.
const LENET_DATAPATH_LAYERS: usize = 5;

#[test]
fn default_run_chosen_point_passes_in_verilator_and_a_wrong_rounding_fails() {
    if !common::verilator_present("rtl_datapath") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("export");
    let status = Command::new(env!("CARGO_BIN_EXE_qdse"))
        .args([
            "export",
            "configs/default.toml",
            "--point",
            "reports/lenet5-fashion-descent/chosen.toml",
            "--samples",
            "2",
        ])
        .arg("--out")
        .arg(&out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success());
    let (pass, log) = common::run_testbench(&out, 2);
    assert!(pass, "{log}");
    assert!(log.contains(&format!("of {LENET_DATAPATH_LAYERS} layers over 2 samples")), "{log}");

    // Half-even with the tie going the wrong way: the golden vectors must catch it.
    let sv = out.join("rtl/qdse_layer.sv");
    let text = std::fs::read_to_string(&sv).unwrap();
    let right = "(r == half && q[0])";
    assert!(text.contains(right), "the half-even tie rule is where this test expects it");
    std::fs::write(&sv, text.replace(right, "(r == half && !q[0])")).unwrap();
    std::fs::remove_dir_all(out.join("rtl/obj")).unwrap();
    let (pass, log) = common::run_testbench(&out, 2);
    assert!(!pass && log.contains("MISMATCH"), "a wrong rounding passed:\n{log}");
}
