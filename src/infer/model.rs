//! An ONNX model as lesioneval runs it: one float input, one float output, and
//! a list of nodes in execution order whose weights are already resolved.
//!
//! Loading does the work once so both backends stay simple:
//! - every weight-like input (conv weights, norm parameters, Reshape shapes,
//!   Resize scales) must be a constant (initializer, `Constant` node, or a node
//!   whose inputs are all constants, which is evaluated on the CPU at load);
//! - BatchNormalization after a Conv/ConvTranspose is folded into its weights
//!   (w·γ/√(var+ε), (b−mean)·γ/√(var+ε)+β); elsewhere it is a per-channel affine;
//! - Relu/LeakyRelu/Sigmoid right after a Conv, ConvTranspose, norm or affine is
//!   fused into it when nothing else reads the intermediate value;
//! - an unsupported operator, attribute or attribute value is an error naming
//!   the node, the operator and the attribute.
//!
//! 2-D convolutions and pools are stored as 3-D ones with a depth-1 kernel.

use super::proto::{self, AttrValue, Dim, NodeProto, TensorData};
use super::tensor::{ConstTensor, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// Element-wise activation, possibly fused into the op that precedes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    None,
    Relu,
    Leaky(f32),
    Sigmoid,
}

impl Act {
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::None => x,
            Act::Relu => x.max(0.0),
            Act::Leaky(a) => {
                if x < 0.0 {
                    a * x
                } else {
                    x
                }
            }
            Act::Sigmoid => sigmoid(x),
        }
    }
}

#[inline]
pub fn sigmoid(x: f32) -> f32 {
    // exp of a negative number only, so large |x| never overflows.
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Spatial padding rule of a conv or pool.
#[derive(Debug, Clone, PartialEq)]
pub enum Pads {
    /// Per spatial axis (d, h, w): before and after.
    Explicit {
        begin: [usize; 3],
        end: [usize; 3],
    },
    SameUpper,
    SameLower,
}

impl Pads {
    /// Padding before and after on each axis for an input of spatial size `size`.
    pub fn resolve(
        &self,
        size: [usize; 3],
        kernel: [usize; 3],
        strides: [usize; 3],
        dil: [usize; 3],
    ) -> ([usize; 3], [usize; 3]) {
        match self {
            Pads::Explicit { begin, end } => (*begin, *end),
            Pads::SameUpper | Pads::SameLower => {
                let (mut b, mut e) = ([0; 3], [0; 3]);
                for a in 0..3 {
                    let out = size[a].div_ceil(strides[a]);
                    let span = (kernel[a] - 1) * dil[a] + 1;
                    let total = ((out.saturating_sub(1)) * strides[a] + span).saturating_sub(size[a]);
                    let small = total / 2;
                    (b[a], e[a]) = if *self == Pads::SameUpper {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                }
                (b, e)
            }
        }
    }
}

/// Conv (also used for 2-D, as depth 1).
#[derive(Debug, Clone)]
pub struct ConvSpec {
    /// [c_out, c_in, kd, kh, kw]; shared with other nodes that read the same initializer.
    pub weight: Arc<Vec<f32>>,
    pub bias: Vec<f32>,
    pub c_in: usize,
    pub c_out: usize,
    pub kernel: [usize; 3],
    pub strides: [usize; 3],
    pub dilations: [usize; 3],
    pub pads: Pads,
    /// 2 or 3 spatial axes in the tensors.
    pub rank: usize,
    pub act: Act,
}

/// ConvTranspose.
#[derive(Debug, Clone)]
pub struct ConvTSpec {
    /// [c_in, c_out, kd, kh, kw] (ONNX layout); shared like [`ConvSpec::weight`].
    pub weight: Arc<Vec<f32>>,
    pub bias: Vec<f32>,
    pub c_in: usize,
    pub c_out: usize,
    pub kernel: [usize; 3],
    pub strides: [usize; 3],
    pub dilations: [usize; 3],
    pub pad_begin: [usize; 3],
    pub pad_end: [usize; 3],
    pub output_padding: [usize; 3],
    pub rank: usize,
    pub act: Act,
}

#[derive(Debug, Clone)]
pub struct PoolSpec {
    pub max: bool,
    pub kernel: [usize; 3],
    pub strides: [usize; 3],
    pub pads: Pads,
    pub count_include_pad: bool,
    pub rank: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coord {
    HalfPixel,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NearestMode {
    /// Resize before opset 11 (no `nearest_mode` attribute), as onnxruntime
    /// runs it: ceil along an axis that shrinks (scale < 1), else floor.
    Simple,
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResizeTarget {
    /// One scale per tensor axis.
    Scales(Vec<f32>),
    /// One size per tensor axis.
    Sizes(Vec<usize>),
}

#[derive(Debug, Clone)]
pub struct ResizeSpec {
    pub linear: bool,
    pub coord: Coord,
    pub nearest: NearestMode,
    pub target: ResizeTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinKind {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinKind {
    #[inline]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinKind::Add => a + b,
            BinKind::Sub => a - b,
            BinKind::Mul => a * b,
            BinKind::Div => a / b,
        }
    }
}

/// The second operand of a binary op.
#[derive(Debug, Clone)]
pub enum Operand {
    Value(String),
    /// A constant; `swapped` means it is the left operand (`c − x`, `c / x`).
    Const {
        t: ConstTensor,
        swapped: bool,
    },
}

#[derive(Debug, Clone)]
pub enum Op {
    Conv(Box<ConvSpec>),
    ConvTranspose(Box<ConvTSpec>),
    /// y = x·`scale[c]` + `shift[c]` over axis 1 (BatchNormalization not folded).
    Affine {
        scale: Vec<f32>,
        shift: Vec<f32>,
        act: Act,
    },
    InstanceNorm {
        scale: Vec<f32>,
        bias: Vec<f32>,
        eps: f32,
        act: Act,
    },
    Act(Act),
    /// y = x if x ≥ 0 else slope·x, slope broadcast against x.
    PRelu {
        slope: ConstTensor,
    },
    /// Over `axis`; `flatten` (opset < 13): over all axes from `axis` on.
    Softmax {
        axis: i64,
        flatten: bool,
    },
    Pool(Box<PoolSpec>),
    Resize(Box<ResizeSpec>),
    Concat {
        axis: i64,
    },
    Binary {
        kind: BinKind,
        b: Operand,
    },
    Transpose {
        perm: Vec<usize>,
    },
    Reshape {
        shape: Vec<i64>,
        allowzero: bool,
    },
    Identity,
}

impl Op {
    fn act_mut(&mut self) -> Option<&mut Act> {
        match self {
            Op::Conv(c) => Some(&mut c.act),
            Op::ConvTranspose(c) => Some(&mut c.act),
            Op::Affine { act, .. } | Op::InstanceNorm { act, .. } => Some(act),
            _ => None,
        }
    }
}

/// One executable node: reads `inputs` (runtime values), writes `output`.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub op_type: String,
    pub inputs: Vec<String>,
    pub output: String,
    pub op: Op,
}

/// A runtime input: its name and declared shape (None where free).
#[derive(Debug, Clone)]
pub struct ModelInput {
    pub name: String,
    pub dims: Vec<Option<usize>>,
}

/// The loaded model.
#[derive(Debug, Clone)]
pub struct Model {
    /// Runtime inputs; image models have exactly one.
    pub inputs: Vec<ModelInput>,
    pub output: String,
    pub nodes: Vec<Node>,
    /// The last op that produces the output applies Softmax or Sigmoid, so
    /// the outputs are probabilities already.
    pub ends_in_activation: bool,
    pub opset: i64,
}

/// Why a model cannot be loaded (the caller adds the file name).
pub type LoadError = String;

struct Attrs<'a> {
    node: &'a NodeProto,
    used: Vec<&'static str>,
}

impl<'a> Attrs<'a> {
    fn new(node: &'a NodeProto) -> Self {
        Attrs { node, used: Vec::new() }
    }

    fn get(&mut self, name: &'static str) -> Option<&'a AttrValue> {
        self.used.push(name);
        self.node.attributes.iter().find(|a| a.name == name).map(|a| &a.value)
    }

    fn bad(&self, attr: &str, why: impl std::fmt::Display) -> LoadError {
        format!("{}: attribute {attr} {why}", describe(self.node))
    }

    fn int(&mut self, name: &'static str, default: i64) -> Result<i64, LoadError> {
        match self.get(name) {
            None => Ok(default),
            Some(AttrValue::Int(v)) => Ok(*v),
            Some(_) => Err(self.bad(name, "must be an integer")),
        }
    }

    fn float(&mut self, name: &'static str, default: f32) -> Result<f32, LoadError> {
        match self.get(name) {
            None => Ok(default),
            Some(AttrValue::Float(v)) => Ok(*v),
            Some(_) => Err(self.bad(name, "must be a float")),
        }
    }

    fn string(&mut self, name: &'static str, default: &str) -> Result<String, LoadError> {
        match self.get(name) {
            None => Ok(default.to_string()),
            Some(AttrValue::String(v)) => Ok(v.clone()),
            Some(_) => Err(self.bad(name, "must be a string")),
        }
    }

    fn ints(&mut self, name: &'static str) -> Result<Option<Vec<i64>>, LoadError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Ints(v)) => Ok(Some(v.clone())),
            Some(_) => Err(self.bad(name, "must be a list of integers")),
        }
    }

    fn floats(&mut self, name: &'static str) -> Result<Option<Vec<f32>>, LoadError> {
        match self.get(name) {
            None => Ok(None),
            Some(AttrValue::Floats(v)) => Ok(Some(v.clone())),
            Some(_) => Err(self.bad(name, "must be a list of floats")),
        }
    }

    /// Every attribute of the node must have been looked at.
    fn finish(self) -> Result<(), LoadError> {
        for a in &self.node.attributes {
            if !self.used.contains(&a.name.as_str()) {
                return Err(format!(
                    "{}: attribute {} is not supported",
                    describe(self.node),
                    a.name
                ));
            }
        }
        Ok(())
    }
}

fn describe(n: &NodeProto) -> String {
    let name = if n.name.is_empty() {
        n.outputs.first().map(String::as_str).unwrap_or("?")
    } else {
        &n.name
    };
    format!("node '{name}' ({})", n.op_type)
}

/// Constants known at load time.
#[derive(Default)]
struct Consts {
    f: HashMap<String, ConstTensor>,
    i: HashMap<String, (Vec<usize>, Vec<i64>)>,
}

impl Consts {
    fn insert(&mut self, t: &proto::TensorProto, name: &str) {
        let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        match &t.data {
            TensorData::F32(v) => {
                self.f.insert(name.to_string(), ConstTensor::new(shape, v.clone()));
            }
            TensorData::I64(v) => {
                self.i.insert(name.to_string(), (shape, v.clone()));
            }
        }
    }

    fn is_const(&self, name: &str) -> bool {
        name.is_empty() || self.f.contains_key(name) || self.i.contains_key(name)
    }
}

/// Largest kernel size, stride, dilation or padding accepted (keeps every size computation far from overflow).
const MAX_ATTR: i64 = 1 << 16;

/// Spatial tuple of length `rank` (2 or 3) from an attribute, as 3 values (depth 1 first for 2-D).
fn spatial(
    v: Option<Vec<i64>>,
    rank: usize,
    default: usize,
    attrs: &Attrs,
    name: &str,
    min: i64,
) -> Result<[usize; 3], LoadError> {
    // A 2-D op gets a neutral depth slot: 1 for sizes, 0 for paddings.
    let depth = if default == 0 { 0 } else { 1 };
    let Some(v) = v else {
        return Ok([if rank == 2 { depth } else { default }, default, default]);
    };
    if v.len() != rank {
        return Err(attrs.bad(name, format!("has {} values for {rank} spatial axes", v.len())));
    }
    if v.iter().any(|&x| x < min || x > MAX_ATTR) {
        return Err(attrs.bad(name, format!("has a value outside {min}..={MAX_ATTR}")));
    }
    let mut out = [depth; 3];
    for (i, x) in v.iter().enumerate() {
        out[3 - rank + i] = *x as usize;
    }
    Ok(out)
}

fn pads_attr(attrs: &mut Attrs, rank: usize) -> Result<Pads, LoadError> {
    let auto = attrs.string("auto_pad", "NOTSET")?;
    let pads = attrs.ints("pads")?;
    match auto.as_str() {
        "NOTSET" => {
            let p = pads.unwrap_or_else(|| vec![0; 2 * rank]);
            if p.len() != 2 * rank || p.iter().any(|&x| !(0..=MAX_ATTR).contains(&x)) {
                return Err(attrs.bad("pads", format!("must hold {} values in 0..={MAX_ATTR}", 2 * rank)));
            }
            let (mut begin, mut end) = ([0; 3], [0; 3]);
            for i in 0..rank {
                begin[3 - rank + i] = p[i] as usize;
                end[3 - rank + i] = p[rank + i] as usize;
            }
            Ok(Pads::Explicit { begin, end })
        }
        "VALID" => Ok(Pads::Explicit {
            begin: [0; 3],
            end: [0; 3],
        }),
        "SAME_UPPER" => Ok(Pads::SameUpper),
        "SAME_LOWER" => Ok(Pads::SameLower),
        other => Err(attrs.bad("auto_pad", format!("= {other} is not supported"))),
    }
}

/// Load a model from the bytes of an `.onnx` file.
pub fn load(bytes: &[u8]) -> Result<Model, LoadError> {
    let m = proto::decode_model(bytes).map_err(|e| format!("not a readable ONNX model: {}", e.0))?;
    let opset = m.opset.unwrap_or(13);
    let g = &m.graph;
    let mut consts = Consts::default();
    for t in &g.initializers {
        consts.insert(t, &t.name);
    }
    let mut inputs = Vec::new();
    for v in g.inputs.iter().filter(|v| !consts.is_const(&v.name)) {
        if v.elem_type != proto::dtype::FLOAT && v.elem_type != 0 {
            return Err(format!(
                "input {} has element type {}; only float32 inputs are supported",
                v.name, v.elem_type
            ));
        }
        let dims: Vec<Option<usize>> = match &v.dims {
            Some(d) => d
                .iter()
                .map(|d| if let Dim::Fixed(v) = d { Some(*v) } else { None })
                .collect(),
            None => return Err(format!("input {} declares no shape; its rank must be known", v.name)),
        };
        inputs.push(ModelInput {
            name: v.name.clone(),
            dims,
        });
    }
    if inputs.is_empty() {
        return Err("the model has no runtime input".into());
    }
    let Some(output) = g.outputs.first() else {
        return Err("the model declares no output".into());
    };

    let mut nodes = Vec::new();
    for n in &g.nodes {
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(format!(
                "{}: operator domain '{}' is not supported",
                describe(n),
                n.domain
            ));
        }
        if n.op_type == "Constant" {
            constant_node(n, &mut consts)?;
            continue;
        }
        let node = build(n, &consts, opset)?;
        // Fold nodes whose inputs are all constants (e.g. a Transpose of weights).
        if node.inputs.iter().all(|i| consts.f.contains_key(i)) && !node.inputs.is_empty() {
            let ins: Vec<Tensor> = node.inputs.iter().map(|i| consts.f[i].to_tensor()).collect();
            let ins: Vec<&Tensor> = ins.iter().collect();
            let t = super::cpu::run_op(&node.op, &ins).map_err(|e| format!("{}: {e}", describe(n)))?;
            consts.f.insert(node.output.clone(), t.into());
            continue;
        }
        nodes.push(node);
    }
    if consts.f.contains_key(&output.name) {
        return Err("the model's output is a constant".into());
    }
    let mut model = Model {
        inputs,
        output: output.name.clone(),
        nodes,
        ends_in_activation: false,
        opset,
    };
    fuse(&mut model);
    check_wiring(&model)?;
    model.ends_in_activation = ends_in_activation(&model);
    Ok(model)
}

fn constant_node(n: &NodeProto, consts: &mut Consts) -> Result<(), LoadError> {
    let Some(out) = n.outputs.first() else {
        return Err(format!("{}: no output", describe(n)));
    };
    let Some(a) = n.attributes.first() else {
        return Err(format!("{}: no value", describe(n)));
    };
    match (&a.name[..], &a.value) {
        ("value", AttrValue::Tensor(t)) => consts.insert(t, out),
        ("value_float", AttrValue::Float(v)) => {
            consts.f.insert(out.clone(), ConstTensor::new(vec![], vec![*v]));
        }
        ("value_floats", AttrValue::Floats(v)) => {
            consts.f.insert(out.clone(), ConstTensor::new(vec![v.len()], v.clone()));
        }
        ("value_int", AttrValue::Int(v)) => {
            consts.i.insert(out.clone(), (vec![], vec![*v]));
        }
        ("value_ints", AttrValue::Ints(v)) => {
            consts.i.insert(out.clone(), (vec![v.len()], v.clone()));
        }
        (name, _) => return Err(format!("{}: attribute {name} is not supported", describe(n))),
    }
    Ok(())
}

fn need_f<'c>(n: &NodeProto, consts: &'c Consts, idx: usize, what: &str) -> Result<&'c ConstTensor, LoadError> {
    let name = n
        .inputs
        .get(idx)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("{}: missing input {what}", describe(n)))?;
    consts.f.get(name).ok_or_else(|| {
        format!(
            "{}: input {what} ('{name}') must be a float constant (an initializer); computed {what}s are not supported",
            describe(n)
        )
    })
}

fn opt_f<'c>(n: &NodeProto, consts: &'c Consts, idx: usize, what: &str) -> Result<Option<&'c ConstTensor>, LoadError> {
    match n.inputs.get(idx).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(_) => need_f(n, consts, idx, what).map(Some),
    }
}

fn opt_i<'c>(n: &NodeProto, consts: &'c Consts, idx: usize, what: &str) -> Result<Option<&'c [i64]>, LoadError> {
    match n.inputs.get(idx).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(name) => consts.i.get(name).map(|(_, v)| Some(v.as_slice())).ok_or_else(|| {
            format!(
                "{}: input {what} ('{name}') must be an integer constant; computed {what}s are not supported",
                describe(n)
            )
        }),
    }
}

fn per_channel(t: &ConstTensor, c: usize, n: &NodeProto, what: &str) -> Result<Vec<f32>, LoadError> {
    if t.len() != c {
        return Err(format!(
            "{}: {what} has {} values for {c} channels",
            describe(n),
            t.len()
        ));
    }
    Ok(t.data.to_vec())
}

/// What Conv and ConvTranspose read the same way: the weight tensor (rank 4 or
/// 5, no empty or oversized axis), group 1, kernel_shape, strides, dilations, bias.
struct ConvWeights {
    weight: Arc<Vec<f32>>,
    bias: Vec<f32>,
    rank: usize,
    c_in: usize,
    c_out: usize,
    kernel: [usize; 3],
    strides: [usize; 3],
    dilations: [usize; 3],
}

fn conv_weights(n: &NodeProto, consts: &Consts, attrs: &mut Attrs, transposed: bool) -> Result<ConvWeights, LoadError> {
    let w = need_f(n, consts, 1, "weight")?;
    let rank = w
        .shape
        .len()
        .checked_sub(2)
        .filter(|r| *r == 2 || *r == 3)
        .ok_or_else(|| {
            format!(
                "{}: weight of rank {}; only 2-D and 3-D convolutions are supported",
                describe(n),
                w.shape.len()
            )
        })?;
    if attrs.int("group", 1)? != 1 {
        return Err(attrs.bad("group", "other than 1 is not supported"));
    }
    if w.shape.contains(&0) || w.shape[2..].iter().any(|&k| k as i64 > MAX_ATTR) {
        return Err(format!(
            "{}: weight of shape {:?} has an empty or oversized axis",
            describe(n),
            w.shape
        ));
    }
    // ONNX weights: Conv [c_out, c_in, k…], ConvTranspose [c_in, c_out, k…].
    let (c_in, c_out) = if transposed {
        (w.shape[0], w.shape[1])
    } else {
        (w.shape[1], w.shape[0])
    };
    let mut kernel = [1; 3];
    kernel[3 - rank..].copy_from_slice(&w.shape[2..]);
    if let Some(ks) = attrs.ints("kernel_shape")?
        && ks.iter().map(|&k| k as usize).ne(w.shape[2..].iter().copied())
    {
        return Err(attrs.bad("kernel_shape", "disagrees with the weight's shape"));
    }
    let strides = spatial(attrs.ints("strides")?, rank, 1, attrs, "strides", 1)?;
    let dilations = spatial(attrs.ints("dilations")?, rank, 1, attrs, "dilations", 1)?;
    let bias = match opt_f(n, consts, 2, "bias")? {
        Some(b) => per_channel(b, c_out, n, "bias")?,
        None => vec![0.0; c_out],
    };
    Ok(ConvWeights {
        weight: w.data.clone(),
        bias,
        rank,
        c_in,
        c_out,
        kernel,
        strides,
        dilations,
    })
}

fn first_input(n: &NodeProto) -> Result<String, LoadError> {
    n.inputs
        .first()
        .filter(|s| !s.is_empty())
        .cloned()
        .ok_or_else(|| format!("{}: missing input", describe(n)))
}

fn build(n: &NodeProto, consts: &Consts, opset: i64) -> Result<Node, LoadError> {
    let mut attrs = Attrs::new(n);
    let x = first_input(n)?;
    let mut inputs = vec![x.clone()];
    let Some(output) = n.outputs.first().cloned() else {
        return Err(format!("{}: no output", describe(n)));
    };
    let op = match n.op_type.as_str() {
        "Conv" => {
            let cw = conv_weights(n, consts, &mut attrs, false)?;
            let pads = pads_attr(&mut attrs, cw.rank)?;
            Op::Conv(Box::new(ConvSpec {
                weight: cw.weight,
                bias: cw.bias,
                c_in: cw.c_in,
                c_out: cw.c_out,
                kernel: cw.kernel,
                strides: cw.strides,
                dilations: cw.dilations,
                pads,
                rank: cw.rank,
                act: Act::None,
            }))
        }
        "ConvTranspose" => {
            let cw = conv_weights(n, consts, &mut attrs, true)?;
            let (rank, c_in, c_out, kernel, strides, dilations) =
                (cw.rank, cw.c_in, cw.c_out, cw.kernel, cw.strides, cw.dilations);
            let output_padding = spatial(attrs.ints("output_padding")?, rank, 0, &attrs, "output_padding", 0)?;
            if (0..3).any(|a| output_padding[a] >= strides[a].max(dilations[a])) {
                return Err(attrs.bad("output_padding", "must be smaller than the stride or the dilation"));
            }
            if attrs.ints("output_shape")?.is_some() {
                return Err(attrs.bad("output_shape", "is not supported (export with explicit pads)"));
            }
            let (pad_begin, pad_end) = match pads_attr(&mut attrs, rank)? {
                Pads::Explicit { begin, end } => (begin, end),
                _ => return Err(attrs.bad("auto_pad", "SAME_* is not supported for ConvTranspose")),
            };
            Op::ConvTranspose(Box::new(ConvTSpec {
                weight: cw.weight,
                bias: cw.bias,
                c_in,
                c_out,
                kernel,
                strides,
                dilations,
                pad_begin,
                pad_end,
                output_padding,
                rank,
                act: Act::None,
            }))
        }
        "BatchNormalization" => {
            let eps = attrs.float("epsilon", 1e-5)?;
            attrs.float("momentum", 0.9)?;
            if attrs.int("training_mode", 0)? != 0 {
                return Err(attrs.bad("training_mode", "= 1 is not supported (export in eval mode)"));
            }
            if attrs.int("spatial", 1)? != 1 {
                return Err(attrs.bad("spatial", "= 0 is not supported"));
            }
            if n.outputs.iter().skip(1).any(|o| !o.is_empty()) {
                return Err(format!(
                    "{}: training outputs (running mean/var) are not supported",
                    describe(n)
                ));
            }
            let gamma = need_f(n, consts, 1, "scale")?;
            let c = gamma.len();
            let beta = per_channel(need_f(n, consts, 2, "B")?, c, n, "B")?;
            let mean = per_channel(need_f(n, consts, 3, "mean")?, c, n, "mean")?;
            let var = per_channel(need_f(n, consts, 4, "var")?, c, n, "var")?;
            let scale: Vec<f32> = (0..c).map(|i| gamma.data[i] / (var[i] + eps).sqrt()).collect();
            let shift = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
            Op::Affine {
                scale,
                shift,
                act: Act::None,
            }
        }
        "InstanceNormalization" => {
            let eps = attrs.float("epsilon", 1e-5)?;
            let scale = need_f(n, consts, 1, "scale")?;
            let c = scale.len();
            let bias = per_channel(need_f(n, consts, 2, "B")?, c, n, "B")?;
            Op::InstanceNorm {
                scale: scale.data.to_vec(),
                bias,
                eps,
                act: Act::None,
            }
        }
        "Relu" => Op::Act(Act::Relu),
        "LeakyRelu" => Op::Act(Act::Leaky(attrs.float("alpha", 0.01)?)),
        "Sigmoid" => Op::Act(Act::Sigmoid),
        "PRelu" => Op::PRelu {
            slope: need_f(n, consts, 1, "slope")?.clone(),
        },
        "Softmax" => {
            let axis = attrs.int("axis", if opset >= 13 { -1 } else { 1 })?;
            Op::Softmax {
                axis,
                flatten: opset < 13,
            }
        }
        "MaxPool" | "AveragePool" => {
            let max = n.op_type == "MaxPool";
            let Some(ks) = attrs.ints("kernel_shape")? else {
                return Err(attrs.bad("kernel_shape", "is required"));
            };
            let rank = ks.len();
            if rank != 2 && rank != 3 {
                return Err(attrs.bad("kernel_shape", "must have 2 or 3 values"));
            }
            let kernel = spatial(Some(ks), rank, 1, &attrs, "kernel_shape", 1)?;
            let strides = spatial(attrs.ints("strides")?, rank, 1, &attrs, "strides", 1)?;
            let d = spatial(attrs.ints("dilations")?, rank, 1, &attrs, "dilations", 1)?;
            if d != [1; 3] {
                return Err(attrs.bad("dilations", "other than 1 is not supported"));
            }
            if max {
                if attrs.int("storage_order", 0)? != 0 {
                    return Err(attrs.bad("storage_order", "= 1 is not supported"));
                }
                if n.outputs.iter().skip(1).any(|o| !o.is_empty()) {
                    return Err(format!("{}: the Indices output is not supported", describe(n)));
                }
            }
            if attrs.int("ceil_mode", 0)? != 0 {
                return Err(attrs.bad("ceil_mode", "= 1 is not supported"));
            }
            let count_include_pad = !max && attrs.int("count_include_pad", 0)? != 0;
            let pads = pads_attr(&mut attrs, rank)?;
            Op::Pool(Box::new(PoolSpec {
                max,
                kernel,
                strides,
                pads,
                count_include_pad,
                rank,
            }))
        }
        "Resize" | "Upsample" => {
            let mode = attrs.string("mode", "nearest")?;
            let linear = match mode.as_str() {
                "nearest" => false,
                "linear" | "bilinear" | "trilinear" => true,
                other => return Err(attrs.bad("mode", format!("= {other} is not supported (nearest, linear)"))),
            };
            let (coord, nearest, target);
            if n.op_type == "Upsample" {
                // Upsample (opset 7–9): asymmetric coordinates, floor for nearest.
                coord = Coord::Asymmetric;
                nearest = NearestMode::Floor;
                let scales = match attrs.floats("scales")? {
                    Some(s) => s,
                    None => need_f(n, consts, 1, "scales")?.data.to_vec(),
                };
                if scales.iter().any(|v| v.is_nan() || *v < 1.0) {
                    return Err(attrs.bad("scales", format!("{scales:?}: Upsample scales must be at least 1")));
                }
                target = ResizeTarget::Scales(scales);
            } else {
                // Resize-10 has no such attributes: asymmetric coordinates and
                // onnxruntime's rounding for nearest (NearestMode::Simple).
                let c = attrs.string(
                    "coordinate_transformation_mode",
                    if opset < 11 { "asymmetric" } else { "half_pixel" },
                )?;
                coord = match c.as_str() {
                    "half_pixel" => Coord::HalfPixel,
                    "pytorch_half_pixel" => Coord::PytorchHalfPixel,
                    "align_corners" => Coord::AlignCorners,
                    "asymmetric" => Coord::Asymmetric,
                    other => {
                        return Err(attrs.bad("coordinate_transformation_mode", format!("= {other} is not supported")));
                    }
                };
                let nm = attrs.string("nearest_mode", if opset < 11 { "simple" } else { "round_prefer_floor" })?;
                nearest = match nm.as_str() {
                    "simple" if opset < 11 => NearestMode::Simple,
                    "round_prefer_floor" => NearestMode::RoundPreferFloor,
                    "round_prefer_ceil" => NearestMode::RoundPreferCeil,
                    "floor" => NearestMode::Floor,
                    "ceil" => NearestMode::Ceil,
                    other => return Err(attrs.bad("nearest_mode", format!("= {other} is not supported"))),
                };
                attrs.float("cubic_coeff_a", -0.75)?;
                if attrs.int("exclude_outside", 0)? != 0 {
                    return Err(attrs.bad("exclude_outside", "= 1 is not supported"));
                }
                attrs.float("extrapolation_value", 0.0)?;
                if attrs.int("antialias", 0)? != 0 {
                    return Err(attrs.bad("antialias", "= 1 is not supported"));
                }
                if attrs.ints("axes")?.is_some() {
                    return Err(attrs.bad("axes", "is not supported"));
                }
                let kar = attrs.string("keep_aspect_ratio_policy", "stretch")?;
                if kar != "stretch" {
                    return Err(attrs.bad("keep_aspect_ratio_policy", format!("= {kar} is not supported")));
                }
                // Inputs: X, roi (opset ≥ 11), scales, sizes; opset 10: X, scales.
                let (si, zi) = if opset >= 11 { (2, 3) } else { (1, usize::MAX) };
                let scales = opt_f(n, consts, si, "scales")?.filter(|t| !t.is_empty());
                let sizes = if zi == usize::MAX {
                    None
                } else {
                    opt_i(n, consts, zi, "sizes")?.filter(|v| !v.is_empty())
                };
                target = match (scales, sizes) {
                    (Some(s), None) => ResizeTarget::Scales(s.data.to_vec()),
                    (None, Some(z)) if z.iter().all(|&v| (1..=1 << 24).contains(&v)) => {
                        ResizeTarget::Sizes(z.iter().map(|&v| v as usize).collect())
                    }
                    (None, Some(z)) => {
                        return Err(format!(
                            "{}: sizes {z:?} must be positive and at most 2^24",
                            describe(n)
                        ));
                    }
                    _ => {
                        return Err(format!(
                            "{}: exactly one of scales and sizes must be given",
                            describe(n)
                        ));
                    }
                };
            }
            Op::Resize(Box::new(ResizeSpec {
                linear,
                coord,
                nearest,
                target,
            }))
        }
        "Concat" => {
            let axis = attrs.int("axis", 1)?;
            inputs = n.inputs.iter().filter(|s| !s.is_empty()).cloned().collect();
            if let Some(c) = inputs.iter().find(|i| consts.is_const(i))
                && !inputs.iter().all(|i| consts.f.contains_key(i))
            {
                return Err(format!(
                    "{}: input '{c}' is a constant; Concat of constants with computed values is not supported",
                    describe(n)
                ));
            }
            Op::Concat { axis }
        }
        "Add" | "Sub" | "Mul" | "Div" => {
            let kind = match n.op_type.as_str() {
                "Add" => BinKind::Add,
                "Sub" => BinKind::Sub,
                "Mul" => BinKind::Mul,
                _ => BinKind::Div,
            };
            let Some(y) = n.inputs.get(1).filter(|s| !s.is_empty()) else {
                return Err(format!("{}: missing input B", describe(n)));
            };
            let (xc, yc) = (consts.f.get(&x), consts.f.get(y));
            match (xc, yc) {
                (None, Some(t)) => Op::Binary {
                    kind,
                    b: Operand::Const {
                        t: t.clone(),
                        swapped: false,
                    },
                },
                (Some(t), None) => {
                    inputs = vec![y.clone()];
                    Op::Binary {
                        kind,
                        b: Operand::Const {
                            t: t.clone(),
                            swapped: true,
                        },
                    }
                }
                _ => {
                    if consts.i.contains_key(&x) || consts.i.contains_key(y) {
                        return Err(format!("{}: integer operands are not supported", describe(n)));
                    }
                    inputs.push(y.clone());
                    Op::Binary {
                        kind,
                        b: Operand::Value(y.clone()),
                    }
                }
            }
        }
        "Transpose" => {
            // No perm: reverse the axes (ONNX); resolved at run time, when the rank is known.
            let perm = attrs.ints("perm")?.unwrap_or_default();
            let mut seen = vec![false; perm.len()];
            for &p in &perm {
                match seen.get_mut(p as usize) {
                    Some(s) if !*s && p >= 0 => *s = true,
                    _ => return Err(attrs.bad("perm", format!("{perm:?} is not a permutation"))),
                }
            }
            Op::Transpose {
                perm: perm.iter().map(|&p| p as usize).collect(),
            }
        }
        "Reshape" => {
            let allowzero = attrs.int("allowzero", 0)? != 0;
            let shape = opt_i(n, consts, 1, "shape")?.ok_or_else(|| format!("{}: missing input shape", describe(n)))?;
            Op::Reshape {
                shape: shape.to_vec(),
                allowzero,
            }
        }
        "Identity" => Op::Identity,
        "Dropout" => {
            attrs.float("ratio", 0.5)?;
            attrs.int("seed", 0)?;
            if n.inputs.len() > 2 && !n.inputs[2].is_empty() {
                let t = consts.i.get(&n.inputs[2]).map(|(_, v)| v.first().copied().unwrap_or(0));
                if t != Some(0) {
                    return Err(format!("{}: training_mode must be a constant false", describe(n)));
                }
            }
            if n.outputs.iter().skip(1).any(|o| !o.is_empty()) {
                return Err(format!("{}: the mask output is not supported", describe(n)));
            }
            Op::Identity
        }
        other => {
            return Err(format!(
                "{}: operator {other} is not supported (supported: Conv, ConvTranspose, BatchNormalization, InstanceNormalization, \
                 Relu, LeakyRelu, PRelu, Sigmoid, Softmax, MaxPool, AveragePool, Resize, Upsample, Concat, Add, Sub, Mul, Div, \
                 Transpose, Reshape, Identity, Dropout, Constant)",
                describe(n)
            ));
        }
    };
    attrs.finish()?;
    // Weight-like inputs are consumed above; runtime inputs are the ones left.
    if !matches!(op, Op::Concat { .. } | Op::Binary { .. }) {
        inputs.truncate(1);
    }
    if consts.i.contains_key(&x) {
        return Err(format!(
            "{}: input '{x}' is an integer constant; only float data flows through the model",
            describe(n)
        ));
    }
    let name = if n.name.is_empty() {
        output.clone()
    } else {
        n.name.clone()
    };
    Ok(Node {
        name,
        op_type: n.op_type.clone(),
        inputs,
        output,
        op,
    })
}

/// How many nodes read each value (the model output counts as a reader).
fn readers(m: &Model) -> HashMap<String, usize> {
    let mut r: HashMap<String, usize> = HashMap::new();
    for n in &m.nodes {
        for i in &n.inputs {
            *r.entry(i.clone()).or_default() += 1;
        }
    }
    *r.entry(m.output.clone()).or_default() += 1;
    r
}

/// BatchNorm folding and activation fusion (see the module docs), in one
/// pass: a node whose single input is read by it alone and made by a node
/// it can fold into is folded there, and that node then makes its output
/// (so a chain Conv → BatchNorm → Relu ends as one Conv). Linear in the
/// node count (a restart after every fold made a crafted 12 000-node file
/// take 17 s to load).
fn fuse(m: &mut Model) {
    let r = readers(m);
    let mut nodes: Vec<Option<Node>> = std::mem::take(&mut m.nodes).into_iter().map(Some).collect();
    // The node (index) that makes each value, as folded so far.
    let mut producer: HashMap<String, usize> = HashMap::new();
    for i in 0..nodes.len() {
        let Some(next) = nodes[i].take() else { continue };
        let target = match next.inputs.as_slice() {
            [x] if r.get(x).copied() == Some(1) => producer.get(x).copied(),
            _ => None,
        };
        if let Some(j) = target
            && let Some(prev) = nodes[j].as_mut()
            && fold(&mut prev.op, &next.op)
        {
            producer.remove(&prev.output);
            prev.output = next.output;
            producer.insert(prev.output.clone(), j);
            continue;
        }
        producer.insert(next.output.clone(), i);
        nodes[i] = Some(next);
    }
    m.nodes = nodes.into_iter().flatten().collect();
}

/// Folds `next` into `prev` when it can (BatchNorm into a Conv, an
/// activation into an op without one); false leaves both as they are.
fn fold(prev: &mut Op, next: &Op) -> bool {
    match (prev, next) {
        (
            Op::Conv(c),
            Op::Affine {
                scale,
                shift,
                act: Act::None,
            },
        ) if c.act == Act::None && scale.len() == c.c_out => {
            let k = c.weight.len() / c.c_out;
            // Copies the weights only if another node shares them.
            for (o, block) in Arc::make_mut(&mut c.weight).chunks_mut(k).enumerate() {
                block.iter_mut().for_each(|w| *w *= scale[o]);
                c.bias[o] = c.bias[o] * scale[o] + shift[o];
            }
            true
        }
        (
            Op::ConvTranspose(c),
            Op::Affine {
                scale,
                shift,
                act: Act::None,
            },
        ) if c.act == Act::None && scale.len() == c.c_out => {
            // Weights are [c_in, c_out, k…]: block i belongs to output channel i % c_out.
            let k = c.weight.len() / (c.c_out * c.c_in);
            for (i, block) in Arc::make_mut(&mut c.weight).chunks_mut(k).enumerate() {
                block.iter_mut().for_each(|w| *w *= scale[i % c.c_out]);
            }
            for ((b, s), t) in c.bias.iter_mut().zip(scale).zip(shift) {
                *b = *b * s + t;
            }
            true
        }
        (op, Op::Act(a)) => match op.act_mut() {
            Some(act) if *act == Act::None => {
                *act = *a;
                true
            }
            _ => false,
        },
        _ => false,
    }
}

fn check_wiring(m: &Model) -> Result<(), LoadError> {
    let mut known: std::collections::HashSet<&str> = m.inputs.iter().map(|i| i.name.as_str()).collect();
    for n in &m.nodes {
        for i in &n.inputs {
            if !known.contains(i.as_str()) {
                return Err(format!(
                    "node '{}' ({}): input '{i}' is not produced by an earlier node",
                    n.name, n.op_type
                ));
            }
        }
        if !known.insert(&n.output) {
            return Err(format!(
                "node '{}' ({}): output '{}' is already defined",
                n.name, n.op_type, n.output
            ));
        }
    }
    if !known.contains(m.output.as_str()) {
        return Err(format!("output '{}' is not produced by any node", m.output));
    }
    Ok(())
}

/// Whether the value that leaves the model went through Softmax or Sigmoid
/// last (possibly followed by layout-only ops).
fn ends_in_activation(m: &Model) -> bool {
    let mut name = m.output.as_str();
    // Bounded walk: never loop on a malformed graph.
    for _ in 0..=m.nodes.len() {
        let Some(n) = m.nodes.iter().find(|n| n.output == name) else {
            return false;
        };
        match &n.op {
            Op::Softmax { .. } | Op::Act(Act::Sigmoid) => return true,
            Op::Conv(c) if c.act == Act::Sigmoid => return true,
            Op::ConvTranspose(c) if c.act == Act::Sigmoid => return true,
            Op::Affine { act: Act::Sigmoid, .. } | Op::InstanceNorm { act: Act::Sigmoid, .. } => return true,
            Op::Transpose { .. } | Op::Reshape { .. } | Op::Identity => name = &n.inputs[0],
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, input: &str, op: Op) -> Node {
        Node {
            name: name.into(),
            op_type: name.into(),
            inputs: vec![input.into()],
            output: format!("{name}_out"),
            op,
        }
    }

    /// Chains of Conv → BatchNorm → Relu fold into one Conv each, in one pass;
    /// a value read twice is not folded away. The three Convs share one
    /// weight (one initializer), so folding copies it for the Conv it changes.
    #[test]
    fn chains_fold_into_their_conv() {
        let shared = Arc::new(vec![2.0]);
        let conv = || {
            Op::Conv(Box::new(ConvSpec {
                weight: shared.clone(),
                bias: vec![1.0],
                c_in: 1,
                c_out: 1,
                kernel: [1; 3],
                strides: [1; 3],
                dilations: [1; 3],
                pads: Pads::Explicit {
                    begin: [0; 3],
                    end: [0; 3],
                },
                rank: 3,
                act: Act::None,
            }))
        };
        let bn = || Op::Affine {
            scale: vec![3.0],
            shift: vec![0.5],
            act: Act::None,
        };
        let mut nodes = Vec::new();
        let mut input = "x".to_string();
        for k in 0..3 {
            nodes.push(node(&format!("c{k}"), &input, conv()));
            nodes.push(node(&format!("b{k}"), &format!("c{k}_out"), bn()));
            nodes.push(node(&format!("r{k}"), &format!("b{k}_out"), Op::Act(Act::Relu)));
            input = format!("r{k}_out");
        }
        // The last Relu's input is also the model's output: it stays a node of its own.
        let mut m = Model {
            inputs: vec![],
            output: "b2_out".into(),
            nodes,
            ends_in_activation: false,
            opset: 13,
        };
        fuse(&mut m);
        let names: Vec<&str> = m.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["c0", "c1", "c2", "r2"]);
        assert_eq!(m.nodes[1].inputs, ["r0_out"]);
        assert_eq!(m.nodes[2].output, "b2_out");
        let Op::Conv(c) = &m.nodes[0].op else { panic!() };
        assert_eq!((c.weight[0], c.bias[0], c.act), (6.0, 3.5, Act::Relu));
        let Op::Conv(c) = &m.nodes[2].op else { panic!() };
        assert_eq!(c.act, Act::None);
        assert_eq!(*shared, [2.0]);
    }
}
