//! A dense float32 tensor in row-major (C) order, as ONNX lays tensors out.

use std::sync::Arc;

/// Shape plus values; `data.len()` is always the product of `shape`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A constant known when the model loads (an initializer, a `Constant` node or
/// a folded node). Its values are shared: the nodes that read one initializer
/// hold one copy between them, however many there are.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstTensor {
    pub shape: Vec<usize>,
    pub data: Arc<Vec<f32>>,
}

impl ConstTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        ConstTensor {
            shape,
            data: Arc::new(data),
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// A copy to run an op on (constant folding at load time).
    pub fn to_tensor(&self) -> Tensor {
        Tensor::new(self.shape.clone(), self.data.to_vec())
    }
}

impl From<Tensor> for ConstTensor {
    fn from(t: Tensor) -> Self {
        ConstTensor::new(t.shape, t.data)
    }
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Numpy broadcasting of two shapes; None if they do not broadcast.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Strides for reading an operand of shape `s` broadcast to `out` (0 on broadcast axes).
pub fn broadcast_strides(s: &[usize], out: &[usize]) -> Vec<usize> {
    let own = strides(s);
    let off = out.len() - s.len();
    (0..out.len())
        .map(|i| if i < off || s[i - off] == 1 { 0 } else { own[i - off] })
        .collect()
}
