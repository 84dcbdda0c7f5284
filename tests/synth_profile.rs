//! `qdse profile synth` regenerates the shipped synthesized profiles: a small grid synthesized
//! here gives the same numbers as the committed cost-models/asic-45nm-synth.toml and
//! cost-models/fpga-xcup-synth.toml at those widths. Skipped with a notice where Yosys is not
//! installed (CI installs it); a missing Yosys is a clear error naming the package.

use qdse::cost::{CostProfile, MultiplierModel};
use std::path::Path;
use std::process::Command;

fn yosys_present() -> bool {
    if Command::new("yosys").arg("-V").output().is_ok() {
        return true;
    }
    eprintln!("NOTICE: synth_profile skipped: yosys is not installed (apt-get install yosys)");
    false
}

/// Run `qdse profile synth ARGS --out FILE` and load what it wrote.
fn synth(dir: &Path, name: &str, args: &[&str]) -> CostProfile {
    let out = dir.join(format!("{name}.toml"));
    let st = Command::new(env!("CARGO_BIN_EXE_qdse"))
        .args(["profile", "synth"])
        .args(args)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success(), "qdse profile synth {args:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("Yosys 0."), "provenance names the Yosys version:\n{text}");
    CostProfile::from_str(&text, name).unwrap().0
}

fn shipped(name: &str) -> CostProfile {
    let (p, warnings) = CostProfile::builtin(name).unwrap().unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    p
}

/// Every multiplier metric of `small` equals `full`'s at the widths `small` lists.
fn same_cells(small: &CostProfile, full: &CostProfile) -> usize {
    let MultiplierModel::Table(t) = &small.multiplier else { panic!("a synthesized profile has a table") };
    let mut n = 0;
    for &bw in &t.weight_bits {
        for &ba in &t.activation_bits {
            assert_eq!(small.multiplier.cost(bw, ba, 1), full.multiplier.cost(bw, ba, 1), "{bw} x {ba}");
            n += 1;
        }
    }
    n
}

#[test]
fn generic_gates_reproduce_the_shipped_profile() {
    if !yosys_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The shipped profile's options (its header names them) on a 2 x 2 corner of its grid.
    let p = synth(
        tmp.path(),
        "asic-45nm-synth",
        &["--target", "generic", "--unsigned-activations", "--weights", "3,8", "--activations", "2,5"],
    );
    let full = shipped("asic-45nm-synth");
    assert_eq!(same_cells(&p, &full), 4);
    assert!(p.multiplier.cost(8, 5, 1).area_um2 > p.multiplier.cost(3, 2, 1).area_um2);
    assert_eq!(p.accumulator, full.accumulator, "the accumulator fit over the same widths");
    assert_eq!(
        (p.storage.clone(), p.datapath.clone(), p.objectives.clone()),
        (full.storage, full.datapath, full.objectives)
    );
}

#[test]
fn ultrascale_luts_and_dsps_reproduce_the_shipped_profile() {
    if !yosys_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = synth(
        tmp.path(),
        "fpga-xcup-synth",
        &[
            "--target",
            "xcup",
            "--unsigned-activations",
            "--weights",
            "2,4",
            "--activations",
            "6",
            "--accumulators",
            "8",
        ],
    );
    let full = shipped("fpga-xcup-synth");
    assert_eq!(same_cells(&p, &full), 2);
    // Yosys builds a 2 x 6 product in LUTs even where DSPs are allowed, a 4 x 6 one in a DSP48E2.
    let (narrow, wide) = (p.multiplier.cost(2, 6, 1), p.multiplier.cost(4, 6, 1));
    assert!(
        narrow.luts > 0.0 && narrow.dsps == 0.0 && wide.luts > narrow.luts && wide.dsps == 1.0,
        "{narrow:?} {wide:?}"
    );
}

#[test]
fn missing_yosys_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_qdse"))
        .args(["profile", "synth", "--target", "generic", "--weights", "2", "--activations", "2", "--out"])
        .arg(tmp.path().join("p.toml"))
        .env("PATH", tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("yosys is not installed") && err.contains("apt-get install yosys"), "{err}");
    assert!(!tmp.path().join("p.toml").exists());
}

#[test]
fn a_liberty_library_prices_area_in_its_cells() {
    if !yosys_present() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lib = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/synth-tiny.lib");
    let args =
        ["--target", "liberty", "--liberty", lib, "--weights", "2,4", "--activations", "4", "--accumulators", "8,16"];
    let p = synth(tmp.path(), "tiny", &args);
    let (small, large) = (p.multiplier.cost(2, 4, 1).area_um2, p.multiplier.cost(4, 4, 1).area_um2);
    assert!(small > 0.0 && large > small, "{small} {large}");
    // An 8-bit accumulator holds at least its 8 flip-flops (4.522 um^2 each in this library).
    assert!(p.accumulator.area(8) > 8.0 * 4.522, "{:?}", p.accumulator);
    // A missing library is an error before Yosys runs.
    let st = Command::new(env!("CARGO_BIN_EXE_qdse"))
        .args(["profile", "synth", "--target", "liberty", "--liberty", "/nonexistent.lib", "--out"])
        .arg(tmp.path().join("x.toml"))
        .output()
        .unwrap();
    assert!(!st.status.success() && String::from_utf8_lossy(&st.stderr).contains("/nonexistent.lib: no such file"));
}
