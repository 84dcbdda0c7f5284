//! The graph IR every other module works on: a topologically ordered list of layers over
//! per-sample tensors (the batch axis is implicit), with parameters already folded to f64.
//!
//! The importer (`onnx.rs`) lowers ONNX into this form: BatchNormalization folded into a
//! directly preceding Conv/Gemm (else an `Affine` layer), ReLU/Clip fused into the layer that
//! owns the tensor when it is that tensor's only consumer, shape subgraphs folded away.

/// Index of a value (tensor) in [`Graph::values`].
pub type ValueId = usize;

/// A tensor flowing between layers. `shape` excludes the batch axis: `[C, H, W]` for feature
/// maps, `[F]` for flat vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub name: String,
    pub shape: Vec<usize>,
}

impl Value {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An activation fused into the layer that produces a value. Applied to the exact
/// accumulator before requantization (docs/fixed-point.md, "A Conv / Dense layer": the same result as after, for every mode).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    None,
    Relu,
    /// Clip(min, max), e.g. ReLU6. Only `min >= 0` clips count as "non-negative".
    Clip {
        min: f64,
        max: f64,
    },
}

impl Activation {
    /// Whether the output of this activation can never be negative.
    pub fn non_negative(&self) -> bool {
        match self {
            Activation::None => false,
            Activation::Relu => true,
            Activation::Clip { min, .. } => *min >= 0.0,
        }
    }
}

/// Spatial window geometry shared by convolution and pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`, as ONNX `pads = [x1_begin, x2_begin, x1_end, x2_end]`.
    pub pads: [usize; 4],
    pub dilation: [usize; 2],
}

impl Window {
    /// Output spatial size for an input of `[h, w]` (floor mode, as ONNX's default).
    pub fn output_hw(&self, h: usize, w: usize) -> Option<[usize; 2]> {
        let eff = |k: usize, d: usize| (k - 1) * d + 1;
        let ph = h + self.pads[0] + self.pads[2];
        let pw = w + self.pads[1] + self.pads[3];
        let kh = eff(self.kernel[0], self.dilation[0]);
        let kw = eff(self.kernel[1], self.dilation[1]);
        if ph < kh || pw < kw || self.stride[0] == 0 || self.stride[1] == 0 {
            return None;
        }
        Some([(ph - kh) / self.stride[0] + 1, (pw - kw) / self.stride[1] + 1])
    }
}

/// 2-D convolution. `weight` is `[out_c][in_c / groups][kh][kw]` (ONNX order), `bias` has
/// `out_c` entries (zeros when the model had none; `has_bias` records which).
#[derive(Debug, Clone, PartialEq)]
pub struct Conv {
    pub in_channels: usize,
    pub out_channels: usize,
    pub groups: usize,
    pub window: Window,
    pub weight: Vec<f64>,
    pub bias: Vec<f64>,
    pub has_bias: bool,
    pub activation: Activation,
}

/// Fully connected layer: `y = W x + b`, `weight` is `[out][in]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    pub in_features: usize,
    pub out_features: usize,
    pub weight: Vec<f64>,
    pub bias: Vec<f64>,
    pub has_bias: bool,
    pub activation: Activation,
}

/// Per-channel `y = scale[c] * x + shift[c]`: a BatchNormalization that could not be folded.
#[derive(Debug, Clone, PartialEq)]
pub struct Affine {
    pub channels: usize,
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
    pub activation: Activation,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv(Conv),
    Dense(Dense),
    Affine(Affine),
    /// Element-wise sum of two same-shaped inputs (residual).
    Add {
        activation: Activation,
    },
    /// Stack inputs along the channel axis.
    Concat,
    MaxPool(Window),
    /// `count_include_pad` as in ONNX (default false).
    AvgPool {
        window: Window,
        count_include_pad: bool,
    },
    /// Mean over H and W (GlobalAveragePool, ReduceMean over spatial axes).
    GlobalAvgPool,
    /// Max over H and W (GlobalMaxPool, ReduceMax over spatial axes).
    GlobalMaxPool,
    /// A ReLU/Clip that could not be fused (its input has other consumers).
    Activation(Activation),
    /// Reshape to `[C*H*W]`; data order is unchanged.
    Flatten,
}

impl Op {
    /// Short op name for tables and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv(c) if c.groups > 1 && c.groups == c.in_channels => "DepthwiseConv",
            Op::Conv(_) => "Conv",
            Op::Dense(_) => "Dense",
            Op::Affine(_) => "Affine",
            Op::Add { .. } => "Add",
            Op::Concat => "Concat",
            Op::MaxPool(_) => "MaxPool",
            Op::AvgPool { .. } => "AvgPool",
            Op::GlobalAvgPool => "GlobalAvgPool",
            Op::GlobalMaxPool => "GlobalMaxPool",
            Op::Activation(_) => "Activation",
            Op::Flatten => "Flatten",
        }
    }

    /// Whether this layer owns weight and bias formats (docs/fixed-point.md, "Which node owns which format").
    pub fn has_params(&self) -> bool {
        match self {
            Op::Conv(_) | Op::Dense(_) | Op::Affine(_) => true,
            Op::Add { .. }
            | Op::Concat
            | Op::MaxPool(_)
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::GlobalMaxPool
            | Op::Activation(_)
            | Op::Flatten => false,
        }
    }

    /// Whether this layer owns an output format. The others pass their input's format through.
    pub fn owns_output(&self) -> bool {
        match self {
            Op::Conv(_)
            | Op::Dense(_)
            | Op::Affine(_)
            | Op::Add { .. }
            | Op::Concat
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool => true,
            Op::MaxPool(_) | Op::GlobalMaxPool | Op::Activation(_) | Op::Flatten => false,
        }
    }

    /// The fused activation, if this op has one.
    pub fn activation(&self) -> Activation {
        match self {
            Op::Conv(c) => c.activation,
            Op::Dense(d) => d.activation,
            Op::Affine(a) => a.activation,
            Op::Add { activation } => *activation,
            Op::Activation(a) => *a,
            Op::Concat | Op::MaxPool(_) | Op::AvgPool { .. } | Op::GlobalAvgPool | Op::GlobalMaxPool | Op::Flatten => {
                Activation::None
            }
        }
    }

    /// (weights, bias) parameter slices of a parameterised layer.
    pub fn params(&self) -> Option<(&[f64], &[f64])> {
        match self {
            Op::Conv(c) => Some((&c.weight, &c.bias)),
            Op::Dense(d) => Some((&d.weight, &d.bias)),
            Op::Affine(a) => Some((&a.scale, &a.shift)),
            Op::Add { .. }
            | Op::Concat
            | Op::MaxPool(_)
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::GlobalMaxPool
            | Op::Activation(_)
            | Op::Flatten => None,
        }
    }
}

/// One layer: an op over input values producing one output value. `name` is the ONNX node
/// name of the node that owns the layer (the Conv/Gemm/... the user names in point files).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
}

/// A whole network: one input, one output (the logits), nodes in topological order.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    pub input: ValueId,
    pub output: ValueId,
}

impl Graph {
    pub fn input_shape(&self) -> &[usize] {
        &self.values[self.input].shape
    }

    pub fn num_classes(&self) -> usize {
        self.values[self.output].numel()
    }

    pub fn shape(&self, v: ValueId) -> &[usize] {
        &self.values[v].shape
    }

    /// Multiplications per sample of one node (MACs for Conv/Dense, one per element for Affine).
    pub fn macs(&self, node: &Node) -> u64 {
        let out = self.values[node.output].numel() as u64;
        match &node.op {
            Op::Conv(c) => {
                let per_out = (c.in_channels / c.groups * c.window.kernel[0] * c.window.kernel[1]) as u64;
                out * per_out
            }
            Op::Dense(d) => (d.in_features * d.out_features) as u64,
            Op::Affine(_) => out,
            Op::Add { .. }
            | Op::Concat
            | Op::MaxPool(_)
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::GlobalMaxPool
            | Op::Activation(_)
            | Op::Flatten => 0,
        }
    }

    /// Number of inputs summed into each output element (the accumulator's fan-in).
    pub fn fan_in(&self, node: &Node) -> usize {
        match &node.op {
            Op::Conv(c) => c.in_channels / c.groups * c.window.kernel[0] * c.window.kernel[1],
            Op::Dense(d) => d.in_features,
            Op::Affine(_) => 1,
            Op::Add { .. } => 2,
            Op::AvgPool { window, .. } => window.kernel[0] * window.kernel[1],
            Op::GlobalAvgPool => {
                let s = &self.values[node.inputs[0]].shape;
                s[1..].iter().product()
            }
            Op::Concat | Op::MaxPool(_) | Op::GlobalMaxPool | Op::Activation(_) | Op::Flatten => 0,
        }
    }

    /// (weights, biases) parameter counts of one node; biases counted only if the model had them.
    pub fn param_counts(&self, node: &Node) -> (usize, usize) {
        match &node.op {
            Op::Conv(c) => (c.weight.len(), if c.has_bias { c.bias.len() } else { 0 }),
            Op::Dense(d) => (d.weight.len(), if d.has_bias { d.bias.len() } else { 0 }),
            Op::Affine(a) => (a.scale.len(), a.shift.len()),
            Op::Add { .. }
            | Op::Concat
            | Op::MaxPool(_)
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::GlobalMaxPool
            | Op::Activation(_)
            | Op::Flatten => (0, 0),
        }
    }

    /// Nodes that own an output format, in order: the "layers" of point files and searches.
    pub fn quant_layers(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes.iter().enumerate().filter(|(_, n)| n.op.owns_output())
    }

    /// For each value, whether it can never be negative, from structure alone (so that an
    /// unsigned format is legal for it whatever the data).
    pub fn non_negative(&self, input_non_negative: bool) -> Vec<bool> {
        let mut nn = vec![false; self.values.len()];
        nn[self.input] = input_non_negative;
        for node in &self.nodes {
            let inputs_nn = node.inputs.iter().all(|&v| nn[v]);
            nn[node.output] = match &node.op {
                Op::Conv(_) | Op::Dense(_) | Op::Affine(_) => node.op.activation().non_negative(),
                Op::Add { activation } => activation.non_negative() || inputs_nn,
                Op::Activation(a) => a.non_negative() || inputs_nn,
                Op::Concat
                | Op::MaxPool(_)
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::GlobalMaxPool
                | Op::Flatten => inputs_nn,
            };
        }
        nn
    }

    /// The consumers of each value.
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let mut c = vec![Vec::new(); self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &v in &n.inputs {
                c[v].push(i);
            }
        }
        c
    }

    pub fn node_by_name(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }
}
