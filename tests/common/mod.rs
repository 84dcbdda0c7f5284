//! Helpers shared by integration tests: a tiny graph builder, the shipped models and data, the
//! `qdse` binary as a process.
#![allow(dead_code)]

use qdse::model::ir::{Affine, Conv, Dense};
use qdse::model::{Activation, Graph, Node, Op, Value, Window};

pub struct Builder {
    pub g: Graph,
}

impl Builder {
    pub fn new(input_shape: Vec<usize>) -> Self {
        Builder {
            g: Graph {
                values: vec![Value { name: "input".into(), shape: input_shape }],
                nodes: vec![],
                input: 0,
                output: 0,
            },
        }
    }

    pub fn shape(&self, v: usize) -> Vec<usize> {
        self.g.values[v].shape.clone()
    }

    pub fn push(&mut self, name: &str, op: Op, inputs: Vec<usize>, shape: Vec<usize>) -> usize {
        let id = self.g.values.len();
        self.g.values.push(Value { name: format!("{name}_out"), shape });
        self.g.nodes.push(Node { name: name.into(), op, inputs, output: id });
        self.g.output = id;
        id
    }

    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        name: &str,
        x: usize,
        out_c: usize,
        k: usize,
        stride: usize,
        pad: usize,
        groups: usize,
        act: Activation,
        params: &mut impl FnMut() -> f64,
    ) -> usize {
        let window = Window { kernel: [k, k], stride: [stride, stride], pads: [pad; 4], dilation: [1, 1] };
        self.conv_window(name, x, out_c, window, groups, act, params)
    }

    /// [`Builder::conv`] with any window (rectangular kernel, asymmetric pads, dilation).
    #[allow(clippy::too_many_arguments)]
    pub fn conv_window(
        &mut self,
        name: &str,
        x: usize,
        out_c: usize,
        window: Window,
        groups: usize,
        act: Activation,
        params: &mut impl FnMut() -> f64,
    ) -> usize {
        let s = self.shape(x);
        let [oh, ow] = window.output_hw(s[1], s[2]).expect("valid conv");
        let weight = (0..out_c * s[0] / groups * window.kernel[0] * window.kernel[1]).map(|_| params()).collect();
        let bias = (0..out_c).map(|_| params()).collect();
        let op = Op::Conv(Conv {
            in_channels: s[0],
            out_channels: out_c,
            groups,
            window,
            weight,
            bias,
            has_bias: true,
            activation: act,
        });
        self.push(name, op, vec![x], vec![out_c, oh, ow])
    }

    pub fn dense(
        &mut self,
        name: &str,
        x: usize,
        out: usize,
        act: Activation,
        params: &mut impl FnMut() -> f64,
    ) -> usize {
        let n: usize = self.shape(x).iter().product();
        let op = Op::Dense(Dense {
            in_features: n,
            out_features: out,
            weight: (0..n * out).map(|_| params()).collect(),
            bias: (0..out).map(|_| params()).collect(),
            has_bias: true,
            activation: act,
        });
        self.push(name, op, vec![x], vec![out])
    }

    pub fn affine(&mut self, name: &str, x: usize, act: Activation, params: &mut impl FnMut() -> f64) -> usize {
        let s = self.shape(x);
        let op = Op::Affine(Affine {
            channels: s[0],
            scale: (0..s[0]).map(|_| params()).collect(),
            shift: (0..s[0]).map(|_| params()).collect(),
            activation: act,
        });
        self.push(name, op, vec![x], s)
    }
}

// ---------- shipped models, data and fixtures ----------

/// The six shipped models (`models/<name>.onnx`).
pub const SHIPPED_MODELS: [&str; 6] =
    ["lenet5-fashion", "lenet5-mnist", "seq14-fashion", "seq14-mnist", "branched-fashion", "branched-mnist"];

/// A path relative to the repository root; panics if the file is missing (the shipped models,
/// data and fixtures are committed, so a missing one is an error, not a reason to skip).
pub fn repo_file(rel: &str) -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    assert!(p.exists(), "{rel} is missing (it is committed in the repository)");
    p
}

/// Imports `models/<name>.onnx`.
pub fn shipped_model(name: &str) -> Graph {
    let p = repo_file(&format!("models/{name}.onnx"));
    qdse::model::onnx::load(&p).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The test split a shipped model is evaluated on: Fashion-MNIST t10k for `*-fashion`, the
/// held-out MNIST digits for `*-mnist`.
pub fn shipped_test_data(model: &str) -> qdse::data::Dataset {
    let (img, lbl) = if model.ends_with("-fashion") {
        ("data/fashion-mnist/t10k-images-idx3-ubyte.gz", "data/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    } else if model.ends_with("-mnist") {
        ("data/mnist-10k/test-images-idx3-ubyte.gz", "data/mnist-10k/test-labels-idx1-ubyte.gz")
    } else {
        panic!("no data set for model {model}")
    };
    qdse::data::load(&repo_file(img), &repo_file(lbl), None).unwrap_or_else(|e| panic!("{model}: {e}"))
}

/// The shipped models' preprocessing: pixel / 255, no mean/std.
pub fn pixel_over_255() -> qdse::data::Preprocess {
    qdse::data::Preprocess { scale: 1.0 / 255.0, mean: vec![0.0], std: vec![1.0] }
}

/// The first `n` images of `ds`, preprocessed to f32 (as the float engine takes them).
pub fn inputs_f32(ds: &qdse::data::Dataset, n: usize) -> Vec<Vec<f32>> {
    let pre = pixel_over_255();
    (0..n.min(ds.len()))
        .map(|i| {
            let mut x = vec![0f32; ds.sample_len()];
            pre.apply_f32(ds, i, &mut x);
            x
        })
        .collect()
}

/// The first `n` images of `ds`, preprocessed in f64 (as the integer engine takes them).
pub fn inputs_f64(ds: &qdse::data::Dataset, n: usize) -> Vec<Vec<f64>> {
    let pre = pixel_over_255();
    (0..n.min(ds.len()))
        .map(|i| {
            let mut x = vec![0f64; ds.sample_len()];
            pre.apply_f64(ds, i, &mut x);
            x
        })
        .collect()
}

/// Reads a little-endian float32 `.npy` (format v1.0, C order): (shape, data).
pub fn read_npy_f32(p: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(&b[..6], b"\x93NUMPY", "{}: not a .npy file", p.display());
    assert_eq!(b[6], 1, "{}: only .npy v1.0 is read here", p.display());
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hl]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{}: {header}", p.display());
    assert!(header.contains("'fortran_order': False"), "{}: {header}", p.display());
    let shape_s = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> =
        shape_s.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect();
    let data: Vec<f32> = b[10 + hl..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(data.len(), shape.iter().product::<usize>(), "{}: data length vs shape {shape:?}", p.display());
    (shape, data)
}

/// An IDX file: element type `code` (0x08: u8), big-endian `dims`, then `data`.
pub fn idx(code: u8, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, code, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

/// Index of the largest element (the first one on ties).
pub fn argmax<T: PartialOrd + Copy>(xs: &[T]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

// ---------- the qdse binary ----------

pub const QDSE: &str = env!("CARGO_BIN_EXE_qdse");

pub fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fashion_images() -> std::path::PathBuf {
    root().join("data/fashion-mnist/t10k-images-idx3-ubyte.gz")
}

pub fn fashion_labels() -> std::path::PathBuf {
    root().join("data/fashion-mnist/t10k-labels-idx1-ubyte.gz")
}

/// A file's bytes; panics naming the file.
pub fn read(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A finished `qdse` process.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub what: String,
}

impl Run {
    /// Everything about the run, for assertion messages.
    pub fn dump(&self) -> String {
        format!("{}\nexit: {:?}\n--- stdout\n{}--- stderr\n{}", self.what, self.code, self.stdout, self.stderr)
    }

    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "expected success\n{}", self.dump());
        assert!(!self.stderr.contains("panicked"), "{}", self.dump());
        self
    }

    /// The error contract (src/main.rs): exit code 2, `error:` first, no panic, nothing on
    /// stdout, and every `needle` in stderr.
    pub fn fails_with(&self, needles: &[&str]) -> &Self {
        assert_eq!(self.code, Some(2), "expected exit code 2\n{}", self.dump());
        assert!(self.stderr.starts_with("error: "), "stderr must start with 'error: '\n{}", self.dump());
        assert!(!self.stderr.contains("panicked"), "panic\n{}", self.dump());
        assert!(self.stdout.is_empty(), "nothing on stdout on failure\n{}", self.dump());
        for n in needles {
            assert!(self.stderr.contains(n), "stderr should mention {n:?}\n{}", self.dump());
        }
        self
    }
}

/// Runs `qdse ARGS` in the repository root.
pub fn qdse<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = std::process::Command::new(QDSE).args(args).current_dir(root()).output().expect("spawn qdse");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        what: format!(
            "qdse {}",
            args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
        ),
    }
}

/// Whether Verilator 5 (`--binary`) is installed. Without it the caller skips its check with a
/// printed notice (CI installs it: .ci/run); an older Verilator is a failure, not a skip.
pub fn verilator_present(test: &str) -> bool {
    match std::process::Command::new("verilator").arg("--version").output() {
        Ok(out) => {
            let v = String::from_utf8_lossy(&out.stdout).to_string();
            let major: u32 = v.split_whitespace().nth(1).and_then(|s| s.split('.').next()?.parse().ok()).unwrap_or(0);
            assert!(major >= 5, "{test}: the exported testbench needs Verilator 5 (--binary); found '{}'", v.trim());
            true
        }
        Err(_) => {
            eprintln!("NOTICE: {test} skipped: verilator is not installed (apt-get install verilator)");
            false
        }
    }
}

/// Compile an export's testbench with Verilator (the command its README gives) and run it over
/// `samples` golden samples: whether it passed, and what it printed.
pub fn run_testbench(dir: &std::path::Path, samples: usize) -> (bool, String) {
    let cmd =
        qdse::export::rtl::VERILATOR_CMD.replace("rtl/obj/Vqdse_tb", &format!("rtl/obj/Vqdse_tb +samples={samples}"));
    let out = std::process::Command::new("sh").arg("-c").arg(&cmd).current_dir(dir).output().expect("run sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let pass = out.status.success() && text.contains("PASS:");
    let tail: Vec<&str> = text.lines().filter(|l| !l.starts_with("g++") && !l.contains("make:")).collect();
    (pass, tail.join("\n"))
}
