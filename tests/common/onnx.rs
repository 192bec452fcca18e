//! A minimal ONNX (protobuf) writer for hand-built test graphs: only the
//! fields lesioneval's reader looks at. Field numbers are onnx.proto's.

/// One protobuf message being written.
#[derive(Default)]
pub struct Pb(pub Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    pub fn int(mut self, field: u64, v: i64) -> Self {
        self.varint(field << 3);
        self.varint(v as u64);
        self
    }

    pub fn bytes(mut self, field: u64, b: &[u8]) -> Self {
        self.varint((field << 3) | 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    pub fn str(self, field: u64, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }

    pub fn msg(self, field: u64, m: Pb) -> Self {
        self.bytes(field, &m.0)
    }
}

/// A float32 initializer (TensorProto with raw_data).
pub fn tensor(name: &str, dims: &[i64], values: &[f32]) -> Pb {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let t = dims.iter().fold(Pb::default(), |t, &d| t.int(1, d));
    t.int(2, 1).str(8, name).bytes(9, &raw)
}

/// An int64 initializer (Reshape shapes, Resize sizes).
pub fn tensor_i64(name: &str, values: &[i64]) -> Pb {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    Pb::default()
        .int(1, values.len() as i64)
        .int(2, 7)
        .str(8, name)
        .bytes(9, &raw)
}

/// A float32 graph input or output; `None` is a free axis.
pub fn value(name: &str, dims: &[Option<i64>]) -> Pb {
    let shape = dims.iter().fold(Pb::default(), |s, d| {
        s.msg(
            1,
            match d {
                Some(v) => Pb::default().int(1, *v),
                None => Pb::default().str(2, "n"),
            },
        )
    });
    let tensor_type = Pb::default().int(1, 1).msg(2, shape);
    Pb::default().str(1, name).msg(2, Pb::default().msg(1, tensor_type))
}

/// A node; `attrs` are whole AttributeProto messages.
pub fn node(op: &str, name: &str, inputs: &[&str], output: &str, attrs: Vec<Pb>) -> Pb {
    let n = inputs.iter().fold(Pb::default(), |n, i| n.str(1, i));
    let n = n.str(2, output).str(3, name).str(4, op);
    attrs.into_iter().fold(n, |n, a| n.msg(5, a))
}

/// An INTS attribute.
pub fn attr_ints(name: &str, v: &[i64]) -> Pb {
    let a = Pb::default().str(1, name).int(20, 7);
    v.iter().fold(a, |a, &x| a.int(8, x))
}

/// A model (opset `opset`) of these nodes, initializers, inputs and outputs.
pub fn model(opset: i64, nodes: Vec<Pb>, inits: Vec<Pb>, inputs: Vec<Pb>, outputs: Vec<Pb>) -> Vec<u8> {
    let g = Pb::default();
    let g = nodes.into_iter().fold(g, |g, n| g.msg(1, n)).str(2, "test");
    let g = inits.into_iter().fold(g, |g, t| g.msg(5, t));
    let g = inputs.into_iter().fold(g, |g, v| g.msg(11, v));
    let g = outputs.into_iter().fold(g, |g, v| g.msg(12, v));
    Pb::default()
        .int(1, 8)
        .msg(8, Pb::default().str(1, "").int(2, opset))
        .msg(7, g)
        .0
}

/// An INT attribute.
pub fn attr_int(name: &str, v: i64) -> Pb {
    Pb::default().str(1, name).int(20, 2).int(3, v)
}
