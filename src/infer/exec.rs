//! Executes a loaded [`Model`] on one backend: nodes in file order, each value
//! dropped after its last reader so peak memory stays at the live set.

use super::model::{Model, Op};
use super::tensor::Tensor;
use super::{cpu, gpu, model};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Gpu,
}

/// A model ready to run.
pub struct Session {
    pub path: PathBuf,
    pub model: Arc<Model>,
    pub backend: Backend,
    gpu: Option<gpu::GpuModel>,
}

impl Session {
    /// Read and load `path`; for the GPU backend also upload the weights.
    pub fn load(path: &Path, backend: Backend) -> Result<Session> {
        let bytes = std::fs::read(path).map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
        let model = model::load(&bytes).map_err(|e| Error::input(path, e))?;
        Session::from_model(path, model, backend)
    }

    pub fn from_model(path: &Path, model: Model, backend: Backend) -> Result<Session> {
        let model = Arc::new(model);
        let gpu = match backend {
            Backend::Cpu => None,
            Backend::Gpu => Some(gpu::GpuModel::new(model.clone()).map_err(|e| e.in_file(path))?),
        };
        Ok(Session {
            path: path.to_path_buf(),
            model,
            backend,
            gpu,
        })
    }

    /// Run on one input tensor per model input (batch included); returns the model's output.
    pub fn run(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        match &self.gpu {
            Some(g) => g.run(inputs).map_err(|e| e.in_file(&self.path)),
            None => run_cpu(&self.model, inputs).map_err(|e| Error::input(&self.path, e)),
        }
    }

    /// The largest batch of patches of this spatial size the backend takes in one call.
    pub fn max_batch(&self, input_shape_batch1: &[usize]) -> Result<usize> {
        match &self.gpu {
            Some(g) => g.max_batch(input_shape_batch1).map_err(|e| e.in_file(&self.path)),
            None => Ok(1),
        }
    }
}

/// Number of readers left for each value.
pub(crate) fn use_counts(m: &Model) -> HashMap<&str, usize> {
    let mut c: HashMap<&str, usize> = HashMap::new();
    for n in &m.nodes {
        for i in &n.inputs {
            *c.entry(i.as_str()).or_default() += 1;
        }
    }
    *c.entry(m.output.as_str()).or_default() += 1;
    c
}

/// Shapes of every value for these input shapes, without executing anything:
/// a model that cannot run on them fails here, before any op is computed.
pub(crate) fn plan_shapes(m: &Model, inputs: &[&[usize]]) -> std::result::Result<HashMap<String, Vec<usize>>, String> {
    let mut s: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, sh) in m.inputs.iter().zip(inputs) {
        s.insert(i.name.clone(), sh.to_vec());
    }
    for n in &m.nodes {
        let ins: Vec<&[usize]> = n.inputs.iter().map(|i| s[i].as_slice()).collect();
        let o = super::shape::infer(&n.op, &ins).map_err(|e| node_err(n, e))?;
        s.insert(n.output.clone(), o);
    }
    Ok(s)
}

/// Execute on the CPU; errors name the node.
pub fn run_cpu(m: &Model, inputs: &[&Tensor]) -> std::result::Result<Tensor, String> {
    check_inputs(m, inputs.iter().map(|t| t.shape.as_slice()))?;
    // A shape that fails late in the graph (a crafted Resize, a wrong Concat)
    // is an error before the early, possibly huge, ops are computed.
    let in_shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape.as_slice()).collect();
    plan_shapes(m, &in_shapes)?;
    let mut left = use_counts(m);
    let mut values: HashMap<&str, Tensor> = HashMap::new();
    for (i, t) in m.inputs.iter().zip(inputs) {
        values.insert(i.name.as_str(), (*t).clone());
    }
    let profile = std::env::var_os("LESIONEVAL_PROFILE_OPS").is_some();
    for n in &m.nodes {
        let t0 = std::time::Instant::now();
        let ins: Vec<&Tensor> = n.inputs.iter().map(|i| &values[i.as_str()]).collect();
        let out = match &n.op {
            Op::Reshape { .. } | Op::Identity if left.get(n.inputs[0].as_str()) == Some(&1) => {
                // Last reader: move instead of copying.
                let shape = super::shape::infer(&n.op, &[&ins[0].shape]).map_err(|e| node_err(n, e))?;
                let mut t = values.remove(n.inputs[0].as_str()).expect("input present");
                t.shape = shape;
                left.remove(n.inputs[0].as_str());
                t
            }
            _ => {
                #[cfg(test)]
                tests::OPS_RUN.with(|c| c.set(c.get() + 1));
                cpu::run_op(&n.op, &ins).map_err(|e| node_err(n, e))?
            }
        };
        for i in &n.inputs {
            if let Some(c) = left.get_mut(i.as_str()) {
                *c -= 1;
                if *c == 0 {
                    values.remove(i.as_str());
                }
            }
        }
        if profile {
            eprintln!(
                "op {} {:?} {:.2}ms",
                n.op_type,
                out.shape,
                t0.elapsed().as_secs_f64() * 1e3
            );
        }
        values.insert(n.output.as_str(), out);
    }
    values
        .remove(m.output.as_str())
        .ok_or_else(|| "the output was not computed".to_string())
}

pub(crate) fn node_err(n: &model::Node, e: String) -> String {
    format!("node '{}' ({}): {e}", n.name, n.op_type)
}

/// One tensor per input, each with the declared rank and fixed sizes (the batch axis is free).
pub(crate) fn check_inputs<'a>(
    m: &Model,
    shapes: impl ExactSizeIterator<Item = &'a [usize]>,
) -> std::result::Result<(), String> {
    if shapes.len() != m.inputs.len() {
        return Err(format!(
            "the model takes {} inputs, got {}",
            m.inputs.len(),
            shapes.len()
        ));
    }
    for (inp, shape) in m.inputs.iter().zip(shapes) {
        if shape.len() != inp.dims.len() {
            return Err(format!(
                "input {} is {}-D, got shape {shape:?}",
                inp.name,
                inp.dims.len()
            ));
        }
        for (i, (&s, d)) in shape.iter().zip(&inp.dims).enumerate() {
            if let Some(d) = d
                && i > 0
                && *d != s
            {
                return Err(format!(
                    "axis {i} of input {} must be {d}, got {s} (shape {shape:?})",
                    inp.name
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::model::{ModelInput, Node, ResizeSpec, ResizeTarget};

    thread_local! {
        pub(super) static OPS_RUN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    /// A Concat whose shapes cannot fit, after a Resize to 2^30 values: the
    /// error comes from planning, before the Resize is computed.
    #[test]
    fn a_late_shape_error_stops_the_run_before_any_op() {
        let node = |name: &str, inputs: &[&str], op: Op| Node {
            name: name.into(),
            op_type: name.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            output: format!("{name}_out"),
            op,
        };
        let resize = Op::Resize(Box::new(ResizeSpec {
            linear: false,
            coord: crate::infer::model::Coord::Asymmetric,
            nearest: crate::infer::model::NearestMode::Floor,
            target: ResizeTarget::Sizes(vec![1, 1, 1024, 1024, 1024]),
        }));
        let m = Model {
            inputs: vec![ModelInput {
                name: "x".into(),
                dims: vec![None, Some(1), None, None, None],
            }],
            output: "join_out".into(),
            nodes: vec![
                node("big", &["x"], resize),
                node("join", &["big_out", "x"], Op::Concat { axis: 1 }),
            ],
            ends_in_activation: false,
            opset: 13,
        };
        let x = Tensor::new(vec![1, 1, 2, 2, 2], vec![1.0; 8]);
        OPS_RUN.with(|c| c.set(0));
        let e = run_cpu(&m, &[&x]).unwrap_err();
        assert!(e.contains("node 'join' (join)"), "{e}");
        assert_eq!(OPS_RUN.with(|c| c.get()), 0, "no op ran");
    }
}
