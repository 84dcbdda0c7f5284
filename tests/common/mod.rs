//! Helpers shared by integration tests: a tiny graph builder.
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
        let s = self.shape(x);
        let window = Window { kernel: [k, k], stride: [stride, stride], pads: [pad; 4], dilation: [1, 1] };
        let [oh, ow] = window.output_hw(s[1], s[2]).expect("valid conv");
        let weight = (0..out_c * s[0] / groups * k * k).map(|_| params()).collect();
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
