//! Cost model: the paper's formulas on a hand-computed network, Horowitz's multiplier energies,
//! DSP tiling and packing, every shipped profile, and a snapshot of the `qdse cost` table.

use qdse::cost::{
    breakdown_json, breakdown_table, price, price_float32, price_uniform, CostModel, CostProfile, MultiplierModel,
    Objective, BUILTIN_NAMES,
};
use qdse::fixed::{Arith, Assignment, Format, LayerFormats, RangeMode};
use qdse::model::ir::{Affine, Conv, Dense};
use qdse::model::{Activation, Graph, Node, Op, Value, Window};

fn value(name: &str, shape: &[usize]) -> Value {
    Value { name: name.into(), shape: shape.to_vec() }
}

fn conv(cin: usize, cout: usize, k: usize, bias: bool) -> Op {
    Op::Conv(Conv {
        in_channels: cin,
        out_channels: cout,
        groups: 1,
        window: Window { kernel: [k, k], stride: [1, 1], pads: [0; 4], dilation: [1, 1] },
        weight: vec![0.5; cout * cin * k * k],
        bias: vec![0.0; cout],
        has_bias: bias,
        activation: Activation::Relu,
    })
}

fn dense(fin: usize, fout: usize, bias: bool) -> Op {
    Op::Dense(Dense {
        in_features: fin,
        out_features: fout,
        weight: vec![0.25; fin * fout],
        bias: vec![0.0; fout],
        has_bias: bias,
        activation: Activation::None,
    })
}

fn node(name: &str, op: Op, inputs: &[usize], output: usize) -> Node {
    Node { name: name.into(), op, inputs: inputs.to_vec(), output }
}

/// input 1x6x6 -> conv1 (2 filters 3x3, bias, ReLU) 2x4x4 -> flatten 32 -> fc (32 -> 3, bias).
fn two_layer() -> Graph {
    Graph {
        values: vec![value("x", &[1, 6, 6]), value("c1", &[2, 4, 4]), value("f", &[32]), value("y", &[3])],
        nodes: vec![
            node("conv1", conv(1, 2, 3, true), &[0], 1),
            node("flatten", Op::Flatten, &[1], 2),
            node("fc", dense(32, 3, true), &[2], 3),
        ],
        input: 0,
        output: 3,
    }
}

fn f(bits: u32) -> Format {
    Format::new(bits, 0, true)
}

/// input 8 bits; conv1 w4 b6 out5; fc w3 b7 out9.
fn mixed(g: &Graph) -> Assignment {
    let lf = |node: usize, w: u32, b: u32, o: u32| LayerFormats {
        node,
        per_channel: false,
        weights: Some(f(w)),
        bias: Some(f(b)),
        output: f(o),
        accumulator: None,
    };
    let a = Assignment { arith: Arith::default(), input: f(8), layers: vec![lf(0, 4, 6, 5), lf(2, 3, 7, 9)] };
    a.validate(g, &g.non_negative(false)).unwrap();
    a
}

fn profile(name: &str) -> CostProfile {
    let (p, warnings) = CostProfile::builtin(name).unwrap().unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    p
}

fn with_operand_output(p: &str) -> CostProfile {
    let text =
        qdse::cost::builtin(p).unwrap().replace("activation_operand = \"input\"", "activation_operand = \"output\"");
    CostProfile::from_str(&text, "paper-output.toml").unwrap().0
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

#[test]
fn paper_profile_reproduces_the_paper_formulas() {
    let g = two_layer();
    let a = mixed(&g);
    let p = profile("paper");
    assert_eq!(p.objectives, vec![Objective::MemoryBits, Objective::MultCost]);
    assert_eq!(p.primary, Objective::MultCost);
    let c = price(&g, &a, &p);
    // Memory = sum B x count: conv1 18 w x 4 + 2 b x 6 + 32 act x 5; fc 96 w x 3 + 3 b x 7 + 3 act x 9
    assert_eq!(c.get("memory_bits"), Some(f64::from(72 + 12 + 160 + 288 + 21 + 27)));
    assert_eq!((c.memory.weights, c.memory.biases, c.memory.activations), (360, 33, 187));
    // Multiplication cost with the input operand: conv1 4 x 8 (input) x 288; fc 3 x 5 (conv1 out) x 96
    assert_eq!(c.get("mult_cost"), Some(f64::from(4 * 8 * 288 + 3 * 5 * 96)));
    assert_eq!(c.get("energy_pj"), None);
    let l = &c.layers;
    assert_eq!((l[0].mults, l[0].bw, l[0].ba, l[0].mult_cost), (288, 4, 8, 9216));
    assert_eq!((l[1].mults, l[1].bw, l[1].ba, l[1].mult_cost), (96, 3, 5, 1440));
    // accumulators: bw + ba + ceil(log2(fan_in)) + 1
    assert_eq!(l[0].acc_bits, 4 + 8 + 4 + 1);
    assert_eq!(l[1].acc_bits, 3 + 5 + 5 + 1);

    // the paper's code: the layer's own output as the activation operand
    let po = with_operand_output("paper");
    let c = price(&g, &a, &po);
    assert_eq!(c.get("mult_cost"), Some(f64::from(4 * 5 * 288 + 3 * 9 * 96)));
    assert_eq!(c.get("memory_bits"), Some(580.0));

    // uniform 8-bit and float32 baselines
    let c8 = price_uniform(&g, &p, 8);
    assert_eq!(c8.get("memory_bits"), Some(8.0 * f64::from(18 + 2 + 32 + 96 + 3 + 3)));
    assert_eq!(c8.get("mult_cost"), Some(64.0 * f64::from(288 + 96)));
    let c32 = price_float32(&g, &p);
    assert_eq!(c32.get("memory_bits"), Some(32.0 * 154.0));
    assert_eq!(c32.get("mult_cost"), Some(1024.0 * 384.0));
    assert_eq!(c32.layers[0].acc_bits, 32);
}

/// Per-channel weight offsets store one shift amount per output channel beside the weights, as
/// wide as the largest amount needs; widths, and so multiplications, are unchanged.
#[test]
fn per_channel_offsets_store_their_shift_amounts() {
    let mut g = two_layer();
    // conv1's channels: max 0.5 and 0.06 (ceil(log2) -1 and -4: shifts 0 and 3, 2 bits each);
    // fc's three: equal magnitudes (no shift to store).
    if let Op::Conv(c) = &mut g.nodes[0].op {
        c.weight[9..].iter_mut().for_each(|w| *w = 0.06);
    }
    let p = profile("paper");
    let per_tensor = mixed(&g);
    let mut per_channel = per_tensor.clone();
    per_channel.layers.iter_mut().for_each(|l| l.per_channel = true);
    let (t, c) = (price(&g, &per_tensor, &p), price(&g, &per_channel, &p));
    assert_eq!(c.memory.weights, t.memory.weights + 2 * 2);
    assert_eq!(c.get("memory_bits"), Some(t.get("memory_bits").unwrap() + 4.0));
    assert_eq!(c.get("mult_cost"), t.get("mult_cost"));
}

#[test]
fn explicit_accumulator_and_removed_bias() {
    let g = two_layer();
    let mut a = mixed(&g);
    a.layers[1].accumulator = Some(12);
    a.layers[1].bias = Some(f(1));
    let paper = profile("paper");
    let c = price(&g, &a, &paper);
    assert_eq!(c.layers[1].acc_bits, 12);
    // two's complement: a 1-bit bias holds {-1, 0} and is stored
    assert_eq!(c.layers[1].bias_bits, 3);
    a.arith.range = RangeMode::Symmetric;
    // the paper counts a removed (1-bit symmetric) bias as 1 bit each ...
    assert_eq!(price(&g, &a, &paper).layers[1].bias_bits, 3);
    // ... hardware profiles store nothing for it
    assert_eq!(price(&g, &a, &profile("asic-45nm")).layers[1].bias_bits, 0);
}

#[test]
fn layer_without_bias_and_affine_layer() {
    // input 2x4x4 -> conv (no bias) 3x2x2 -> affine (BN that was not folded) -> ...
    let g = Graph {
        values: vec![value("x", &[2, 4, 4]), value("c", &[3, 2, 2]), value("bn", &[3, 2, 2])],
        nodes: vec![
            node("c", conv(2, 3, 3, false), &[0], 1),
            node(
                "bn",
                Op::Affine(Affine {
                    channels: 3,
                    scale: vec![1.0; 3],
                    shift: vec![0.0; 3],
                    activation: Activation::None,
                }),
                &[1],
                2,
            ),
        ],
        input: 0,
        output: 2,
    };
    let lf = |node: usize, w: u32, b: u32, o: u32| LayerFormats {
        node,
        per_channel: false,
        weights: Some(f(w)),
        bias: Some(f(b)),
        output: f(o),
        accumulator: None,
    };
    let a = Assignment { arith: Arith::default(), input: f(6), layers: vec![lf(0, 5, 8, 7), lf(1, 4, 3, 6)] };
    let c = price(&g, &a, &profile("paper"));
    let (c0, c1) = (&c.layers[0], &c.layers[1]);
    assert_eq!((c0.weight_bits, c0.bias_bits, c0.activation_bits), (54 * 5, 0, 12 * 7));
    assert_eq!((c0.mults, c0.mult_cost), (12 * 18, 5 * 6 * 12 * 18));
    // affine: one multiplication per element; operand = the conv's output (7 bits)
    assert_eq!((c1.weight_bits, c1.bias_bits, c1.activation_bits), (3 * 4, 3 * 3, 12 * 6));
    assert_eq!((c1.mults, c1.ba, c1.mult_cost), (12, 7, 4 * 7 * 12));
    assert_eq!(c1.acc_bits, 4 + 7 + 1);
}

#[test]
fn asic_profile_gives_horowitz_figures() {
    let p = profile("asic-45nm");
    let e = |w, a| p.multiplier.cost(w, a, 1).energy_pj;
    assert!(close(e(8, 8), 0.2, 1e-5), "{}", e(8, 8));
    assert!(close(e(32, 32), 3.1, 1e-5), "{}", e(32, 32));
    let area = |w, a| p.multiplier.cost(w, a, 1).area_um2;
    assert!(close(area(8, 8), 282.0, 1e-9), "{}", area(8, 8));
    assert!(close(area(32, 32), 3495.0, 1e-9), "{}", area(32, 32));
    // adders: 8 bit 0.03 pJ / 36 um2, 32 bit 0.1 pJ / 137 um2
    assert!(close(p.accumulator.energy(8), 0.03, 1e-3));
    assert!(close(p.accumulator.energy(32), 0.1, 1e-3));
    assert!(close(p.accumulator.area(8), 36.0, 1e-4));
    assert!(close(p.accumulator.area(32), 137.0, 1e-4));
}

#[test]
fn asic_profile_prices_energy_and_area_by_hand() {
    let g = two_layer();
    let a = mixed(&g);
    let p = profile("asic-45nm");
    let c = price(&g, &a, &p);
    let mult = |w: f64, x: f64| 0.0029948 * w * x + 0.0010417 * (w * x).sqrt();
    let add = |bits: f64| 0.0029167 * bits + 0.0066667;
    let sram = 0.3125;
    // conv1: 288 mults at 4x8, accumulator 17 bits; reads 18x4 w + 2x6 b + 36x8 input; writes 32x5
    let e1 = 288.0 * mult(4.0, 8.0) + 288.0 * add(17.0) + (72.0 + 12.0 + 288.0 + 160.0) * sram;
    // fc: 96 mults at 3x5, accumulator 14; reads 96x3 w + 3x7 b + 32x5 input; writes 3x9
    let e2 = 96.0 * mult(3.0, 5.0) + 96.0 * add(14.0) + (288.0 + 21.0 + 160.0 + 27.0) * sram;
    assert!(close(c.layers[0].energy_pj, e1, 1e-12), "{} {e1}", c.layers[0].energy_pj);
    assert!(close(c.get("energy_pj").unwrap(), e1 + e2, 1e-12));
    // ping-pong activations: the largest (input + output) pair: conv1 36x8 + 32x5 = 448 bits
    // (7 whole 64-bit words); weights and biases in 64-bit words: 72->128, 12->64, 288->320, 21->64
    assert_eq!((c.memory.weights, c.memory.biases, c.memory.activations), (128 + 320, 64 + 64, 448));
    // shared 256-MAC array sized for the widest layer: 4 x 8 bits, 17-bit accumulators
    assert_eq!(c.array_widths, Some((4, 8, 17)));
    let area_mult = 3.08203125 * 32.0 + 10.59375 * 32f64.sqrt();
    let array = 256.0 * (area_mult + 4.2083 * 17.0 + 2.3333);
    let storage = (448.0 + 128.0 + 448.0) * 0.346;
    assert!(close(c.get("area_um2").unwrap(), array + storage, 1e-12));
    assert_eq!(c.layers[0].area_um2, 0.0);
}

#[test]
fn dsp_tiling_and_packing_in_the_fpga_profile() {
    let p = profile("fpga-dsp48e2");
    let MultiplierModel::Dsp(d) = &p.multiplier else { panic!("dsp model expected") };
    assert_eq!(d.dsp_count(18, 27, 1), 1);
    assert_eq!(d.dsp_count(27, 18, 1), 1);
    assert_eq!(d.dsp_count(19, 27, 1), 2);
    assert_eq!(d.dsp_count(8, 8, 2), 1); // two 8x8 products in one DSP48E2
    assert_eq!(d.dsp_count(4, 4, 4), 1); // four 4x4
    assert_eq!(d.dsp_count(9, 9, 2), 2);
    assert_eq!(d.dsp_count(32, 32, 1), 4);

    let g = two_layer();
    let c = price(&g, &mixed(&g), &p);
    // 16 multipliers per layer: conv1 4x8 and fc 3x5 both pack two per DSP
    assert_eq!(c.get("dsps"), Some(16.0));
    // accumulators: one LUT per bit, 16 per layer
    assert_eq!(c.get("luts"), Some(16.0 * 17.0 + 16.0 * 14.0));
    // six tensors, each in its own 18 Kib block
    assert_eq!(c.get("memory_bits"), Some(6.0 * 18432.0));
    let c8 = price_uniform(&g, &p, 8);
    assert_eq!(c8.get("dsps"), Some(16.0));
    let c32 = price_float32(&g, &p);
    assert_eq!(c32.get("dsps"), Some(2.0 * 16.0 * 4.0));
}

#[test]
fn mcu_sub_8_bit_multiplies_cost_the_same() {
    let p = profile("mcu-cortex-m");
    let e = |w, a| p.multiplier.cost(w, a, 1).energy_pj;
    assert_eq!(e(2, 2), e(8, 8));
    assert_eq!(e(8, 8), e(16, 16));
    assert_eq!(e(17, 8), 2.0 * e(8, 8));
    p.check_widths(32, 32).unwrap();
    let g = two_layer();
    let a = mixed(&g);
    let c = price(&g, &a, &p);
    assert_eq!(c.layers[0].acc_bits, 32);
    // memory is what changes: fewer bits, same multiplication energy
    let c8 = price_uniform(&g, &p, 8);
    assert!(c.get("memory_bits").unwrap() < c8.get("memory_bits").unwrap());
    let mult_e = |c: &qdse::cost::Costs| c.layers.iter().map(|l| l.mult_energy_pj).sum::<f64>();
    assert_eq!(mult_e(&c), mult_e(&c8));
}

#[test]
fn table_coverage_is_checked_per_layer() {
    let text = "name = \"t\"\nobjectives = [\"energy_pj\"]\n[multiplier]\nmodel = \"table\"\n[multiplier.table]\n\
                weight_bits = [4, 8]\nactivation_bits = [4, 8]\nenergy_pj = [[1, 2], [3, 4]]\n";
    let (p, _) = CostProfile::from_str(text, "t.toml").unwrap();
    let g = two_layer();
    let mut a = mixed(&g);
    let m = CostModel::new(&g, &p);
    m.check(&a).unwrap();
    // widths between listed ones use the next larger: 4x8 and 3x5 both price as 4x8
    assert_eq!(m.objectives(&a).get(Objective::EnergyPj), Some(288.0 * 2.0 + 96.0 * 2.0));
    a.layers[1].weights = Some(f(9));
    let e = format!("{:#}", m.check(&a).unwrap_err());
    assert_eq!(
        e,
        "layer 'fc': t.toml:5:1: the multiplier table covers weights up to 8 bits and activations up to 8 bits; \
         a 9 x 5-bit multiplication is not covered (add a row or column)"
    );
    assert!(m.objectives(&a).get(Objective::EnergyPj).unwrap().is_infinite());
}

#[test]
fn every_shipped_profile_prices_and_renders() {
    let g = two_layer();
    let a = mixed(&g);
    for name in BUILTIN_NAMES {
        let p = profile(name);
        let m = CostModel::new(&g, &p);
        m.check(&a).unwrap();
        let c = m.price(&a);
        assert_eq!(m.objectives(&a), c.totals, "{name}");
        let names = qdse::cost::objective_names(&p);
        assert_eq!(c.totals.names(), names);
        for n in &names {
            let v = c.get(n).unwrap();
            assert!(v.is_finite() && v > 0.0, "{name} {n} = {v}");
        }
        let (c8, c32) = (price_uniform(&g, &p, 8), price_float32(&g, &p));
        let t = breakdown_table(&g, &c, &c8, &c32);
        assert!(t.contains("conv1") && t.contains("vs float32"), "{name}:\n{t}");
        let j = breakdown_json(&g, &c, &c8, &c32);
        assert_eq!(j["layers"].as_array().unwrap().len(), 2);
        assert_eq!(j["objectives"].as_array().unwrap().len(), names.len());
        // A synthesized table stops at 16 bits: float32's 32-bit multipliers are not covered
        // (infinite, no reduction figure) in the metrics the table prices.
        let covers_32 = p.max_widths().is_none_or(|(w, a)| w >= 32 && a >= 32);
        for n in &names {
            // (a tiny network fits one 18 Kib block whatever its widths: no memory reduction)
            match j["reduction_pct"]["vs_float32"][n].as_f64() {
                Some(r) => assert!(r >= 0.0, "{name} {n}"),
                None => assert!(!covers_32 && !["memory_bits", "mult_cost"].contains(n), "{name} {n}"),
            }
        }
    }
}

#[test]
fn paper_breakdown_snapshot() {
    let g = two_layer();
    let p = profile("paper");
    let t = breakdown_table(&g, &price(&g, &mixed(&g), &p), &price_uniform(&g, &p, 8), &price_float32(&g, &p));
    let expected = "\
layer  op     output  bw  ba  acc  weights b  biases b  activ. b  mults  mult cost
conv1  Conv    2x4x4   4   8   17         72        12       160    288       9216
fc     Dense       3   3   5   14        288        21        27     96       1440
total                                    360        33       187    384      10656
(memory in bits; totals are allocated storage; mult cost = bw x ba x mults)

objective    chosen  uniform 8-bit  float32  vs 8-bit  vs float32
memory_bits     580           1232     4928     52.9%       88.2%
mult_cost     10656          24576   393216     56.6%       97.3%
(vs: reduction of the chosen assignment, positive = cheaper)
";
    assert_eq!(t, expected, "\n{t}");
}

#[test]
fn asic_breakdown_snapshot() {
    let g = two_layer();
    let p = profile("asic-45nm");
    let t = breakdown_table(&g, &price(&g, &mixed(&g), &p), &price_uniform(&g, &p, 8), &price_float32(&g, &p));
    let expected = "\
layer         op     output  bw  ba  acc  weights b  biases b  activ. b  mults  mult cost  energy pJ  area um2
conv1         Conv    2x4x4   4   8   17         72        12       160    288       9216     211.75         -
fc            Dense       3   3   5   14        288        21        27     96       1440     164.26         -
storage                                                                                                 354.30
shared array                  4   8   17                                                                 59501
total                                           448       128       448    384      10656     376.01     59856
(memory in bits; totals are allocated storage; mult cost = bw x ba x mults)

objective    chosen  uniform 8-bit  float32  vs 8-bit  vs float32
memory_bits    1024           1664     6016     38.5%       83.0%
mult_cost     10656          24576   393216     56.6%       97.3%
energy_pj    376.01         658.16     3449     42.9%       89.1%
area_um2      59856          97066   931873     38.3%       93.6%
(vs: reduction of the chosen assignment, positive = cheaper)
";
    assert_eq!(t, expected, "\n{t}");
}

/// Every complete profile shown in docs/cost-models.md parses without warnings.
#[test]
fn documented_profiles_parse() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/cost-models.md")).unwrap();
    let mut n = 0;
    for block in doc.split("```toml\n").skip(1) {
        let body = block.split("```").next().unwrap();
        if !body.lines().any(|l| l.starts_with("name = ")) {
            continue;
        }
        let (p, w) =
            CostProfile::from_str(body, "docs/cost-models.md").unwrap_or_else(|e| panic!("{e:#}\nin:\n{body}"));
        assert!(w.is_empty(), "{w:?}");
        let g = two_layer();
        assert!(price(&g, &mixed(&g), &p).totals.iter().all(|(_, v)| v.is_finite()));
        n += 1;
    }
    assert_eq!(n, 3);
}
