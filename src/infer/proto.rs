//! A minimal reader for the protobuf wire format, and the parts of `onnx.proto`
//! that a segmentation model uses (model, graph, node, attribute, tensor, value info).
//!
//! Why hand-written: the protobuf crates generate code from `onnx.proto` at build
//! time (needing `protoc`) or pull in a large runtime; decoding the few messages
//! below is a few hundred lines with no dependency. Unknown fields are skipped,
//! as protobuf requires, so models from newer exporters still load.
//!
//! Wire format: each field is a varint key `(field_number << 3) | wire_type`;
//! wire types 0 = varint, 1 = 8 bytes, 2 = length-delimited (bytes, strings,
//! sub-messages, packed repeated scalars), 5 = 4 bytes. Field numbers below are
//! those of onnx.proto (ONNX 1.x, stable since IR version 3).

/// Decoding failed; the message says where.
#[derive(Debug)]
pub struct DecodeError(pub String);

type R<T> = std::result::Result<T, DecodeError>;

fn err<T>(msg: impl Into<String>) -> R<T> {
    Err(DecodeError(msg.into()))
}

/// A value as it appears on the wire.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> R<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return err("truncated varint");
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        err("varint longer than 10 bytes")
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return err(format!("field of {n} bytes runs past the end of its message"));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next `(field number, value)`, or None at the end.
    fn field(&mut self) -> R<Option<(u32, Wire<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| DecodeError("field number too large".into()))?;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))),
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| DecodeError("length too large".into()))?;
                Wire::Bytes(self.take(n)?)
            }
            5 => Wire::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"))),
            t => return err(format!("unsupported wire type {t} (field {field})")),
        };
        Ok(Some((field, value)))
    }
}

fn string(w: &Wire, what: &str) -> R<String> {
    match w {
        Wire::Bytes(b) => String::from_utf8(b.to_vec()).map_err(|_| DecodeError(format!("{what} is not UTF-8"))),
        _ => err(format!("{what}: expected a string")),
    }
}

fn int(w: &Wire, what: &str) -> R<i64> {
    match w {
        Wire::Varint(v) => Ok(*v as i64),
        _ => err(format!("{what}: expected an integer")),
    }
}

fn float(w: &Wire, what: &str) -> R<f32> {
    match w {
        Wire::Fixed32(v) => Ok(f32::from_bits(*v)),
        _ => err(format!("{what}: expected a float")),
    }
}

/// Repeated int64/int32: either one varint per field or packed in one length-delimited field.
fn push_ints(w: &Wire, out: &mut Vec<i64>, what: &str) -> R<()> {
    match w {
        Wire::Varint(v) => out.push(*v as i64),
        Wire::Bytes(b) => {
            let mut r = Reader::new(b);
            while r.pos < b.len() {
                out.push(r.varint()? as i64);
            }
        }
        _ => return err(format!("{what}: expected integers")),
    }
    Ok(())
}

/// Repeated float: one fixed32 per field or packed.
fn push_floats(w: &Wire, out: &mut Vec<f32>, what: &str) -> R<()> {
    match w {
        Wire::Fixed32(v) => out.push(f32::from_bits(*v)),
        Wire::Bytes(b) => {
            if b.len() % 4 != 0 {
                return err(format!("{what}: packed floats of {} bytes", b.len()));
            }
            out.extend(
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
            );
        }
        _ => return err(format!("{what}: expected floats")),
    }
    Ok(())
}

fn push_doubles(w: &Wire, out: &mut Vec<f64>, what: &str) -> R<()> {
    match w {
        Wire::Fixed64(v) => out.push(f64::from_bits(*v)),
        Wire::Bytes(b) => {
            if b.len() % 8 != 0 {
                return err(format!("{what}: packed doubles of {} bytes", b.len()));
            }
            out.extend(
                b.chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))),
            );
        }
        _ => return err(format!("{what}: expected doubles")),
    }
    Ok(())
}

/// ONNX TensorProto.DataType values we read.
pub mod dtype {
    pub const FLOAT: i64 = 1;
    pub const UINT8: i64 = 2;
    pub const INT8: i64 = 3;
    pub const INT32: i64 = 6;
    pub const INT64: i64 = 7;
    pub const BOOL: i64 = 9;
    pub const DOUBLE: i64 = 11;
}

/// Tensor payload after decoding, in the element type the file used.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

#[derive(Debug, Clone)]
pub struct TensorProto {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: TensorData,
}

fn tensor(b: &[u8]) -> R<TensorProto> {
    let mut r = Reader::new(b);
    let (mut name, mut dims, mut data_type) = (String::new(), Vec::new(), 0i64);
    let (mut floats, mut ints, mut doubles, mut raw) = (Vec::new(), Vec::new(), Vec::new(), None);
    let mut external = false;
    while let Some((f, w)) = r.field()? {
        match f {
            1 => push_ints(&w, &mut dims, "tensor dims")?,
            2 => data_type = int(&w, "tensor data_type")?,
            4 => push_floats(&w, &mut floats, "float_data")?,
            5 | 7 => push_ints(&w, &mut ints, "int_data")?,
            8 => name = string(&w, "tensor name")?,
            9 => match w {
                Wire::Bytes(b) => raw = Some(b),
                _ => return err("raw_data: expected bytes"),
            },
            10 => push_doubles(&w, &mut doubles, "double_data")?,
            13 => external = true,
            14 => external |= int(&w, "data_location")? == 1,
            _ => {}
        }
    }
    let what = if name.is_empty() {
        "unnamed tensor".to_string()
    } else {
        format!("tensor {name}")
    };
    if external {
        return err(format!(
            "{what} keeps its data in an external file, which is not supported; save the model with the weights inside"
        ));
    }
    if dims.iter().any(|&d| d < 0) {
        return err(format!("{what} has a negative dimension"));
    }
    // A crafted file must not make a wrapped element count; 2^31 elements is far above any weight.
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .filter(|&n| n <= 1 << 31)
        .ok_or_else(|| DecodeError(format!("{what} of shape {dims:?} is too large")))?;
    if let Some(b) = raw {
        let size = match data_type {
            dtype::FLOAT | dtype::INT32 => 4,
            dtype::DOUBLE | dtype::INT64 => 8,
            _ => 1,
        };
        if b.len() % size != 0 {
            return err(format!(
                "{what}: raw data of {} bytes is not a whole number of elements",
                b.len()
            ));
        }
    }
    let data = match (data_type, raw) {
        (dtype::FLOAT, Some(b)) => TensorData::F32(
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        ),
        (dtype::FLOAT, None) => TensorData::F32(floats),
        (dtype::DOUBLE, Some(b)) => TensorData::F32(
            b.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
        ),
        (dtype::DOUBLE, None) => TensorData::F32(doubles.into_iter().map(|d| d as f32).collect()),
        (dtype::INT64, Some(b)) => TensorData::I64(
            b.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
        ),
        (dtype::INT32, Some(b)) => TensorData::I64(
            b.chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes(c.try_into().expect("4 bytes"))))
                .collect(),
        ),
        (dtype::UINT8 | dtype::BOOL, Some(b)) => TensorData::I64(b.iter().map(|&v| i64::from(v)).collect()),
        (dtype::INT8, Some(b)) => TensorData::I64(b.iter().map(|&v| i64::from(v as i8)).collect()),
        (dtype::INT64 | dtype::INT32 | dtype::UINT8 | dtype::INT8 | dtype::BOOL, None) => TensorData::I64(ints),
        (t, _) => {
            return err(format!(
                "{what} has data type {t}; only float, double and integer tensors are supported"
            ));
        }
    };
    let len = match &data {
        TensorData::F32(v) => v.len(),
        TensorData::I64(v) => v.len(),
    };
    if len != n {
        return err(format!("{what} holds {len} values for shape {dims:?} ({n} expected)"));
    }
    Ok(TensorProto { name, dims, data })
}

/// An attribute value (the kinds a node of our operator set can carry).
#[derive(Debug, Clone)]
pub enum AttrValue {
    Float(f32),
    Int(i64),
    String(String),
    Tensor(TensorProto),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    /// Graphs, sparse tensors, lists of strings/tensors: present but not usable by us.
    Other(&'static str),
}

#[derive(Debug, Clone)]
pub struct Attribute {
    pub name: String,
    pub value: AttrValue,
}

fn attribute(b: &[u8]) -> R<Attribute> {
    let mut r = Reader::new(b);
    let (mut name, mut ty) = (String::new(), 0i64);
    let (mut f, mut i, mut s, mut t) = (None, None, None, None);
    let (mut floats, mut ints) = (Vec::new(), Vec::new());
    let mut other = None;
    while let Some((field, w)) = r.field()? {
        match field {
            1 => name = string(&w, "attribute name")?,
            20 => ty = int(&w, "attribute type")?,
            2 => f = Some(float(&w, "attribute f")?),
            3 => i = Some(int(&w, "attribute i")?),
            4 => s = Some(string(&w, "attribute s")?),
            5 => match w {
                Wire::Bytes(b) => t = Some(tensor(b)?),
                _ => return err("attribute t: expected a tensor"),
            },
            7 => push_floats(&w, &mut floats, "attribute floats")?,
            8 => push_ints(&w, &mut ints, "attribute ints")?,
            6 | 11 => other = Some("graph"),
            9 => other = Some("strings"),
            10 => other = Some("tensors"),
            22 | 23 => other = Some("sparse tensor"),
            21 => other = Some("reference to a function attribute"),
            _ => {}
        }
    }
    // The type field decides; old exporters omit it, then the one field present does.
    let value = match (ty, f, i, s, t) {
        (1, Some(v), ..) | (0, Some(v), None, None, None) => AttrValue::Float(v),
        (2, _, Some(v), ..) | (0, None, Some(v), None, None) => AttrValue::Int(v),
        (3, _, _, Some(v), _) | (0, None, None, Some(v), None) => AttrValue::String(v),
        (4, _, _, _, Some(v)) | (0, None, None, None, Some(v)) => AttrValue::Tensor(v),
        (6, ..) => AttrValue::Floats(floats),
        (7, ..) => AttrValue::Ints(ints),
        (2, _, None, ..) => AttrValue::Int(0),
        (1, None, ..) => AttrValue::Float(0.0),
        (3, _, _, None, _) => AttrValue::String(String::new()),
        _ if !floats.is_empty() => AttrValue::Floats(floats),
        _ if !ints.is_empty() => AttrValue::Ints(ints),
        _ => AttrValue::Other(other.unwrap_or("unknown")),
    };
    Ok(Attribute { name, value })
}

#[derive(Debug, Clone)]
pub struct NodeProto {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<Attribute>,
}

fn node(b: &[u8]) -> R<NodeProto> {
    let mut r = Reader::new(b);
    let mut n = NodeProto {
        name: String::new(),
        op_type: String::new(),
        domain: String::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        attributes: Vec::new(),
    };
    while let Some((f, w)) = r.field()? {
        match (f, &w) {
            (1, _) => n.inputs.push(string(&w, "node input")?),
            (2, _) => n.outputs.push(string(&w, "node output")?),
            (3, _) => n.name = string(&w, "node name")?,
            (4, _) => n.op_type = string(&w, "op_type")?,
            (7, _) => n.domain = string(&w, "node domain")?,
            (5, Wire::Bytes(b)) => n.attributes.push(attribute(b)?),
            _ => {}
        }
    }
    Ok(n)
}

/// A dimension of a declared input/output shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    /// Symbolic (`dim_param`) or absent: set at run time.
    Free(String),
}

#[derive(Debug, Clone)]
pub struct ValueInfo {
    pub name: String,
    /// None when the file declares no shape.
    pub dims: Option<Vec<Dim>>,
    pub elem_type: i64,
}

fn dimension(b: &[u8]) -> R<Dim> {
    let mut r = Reader::new(b);
    let mut d = Dim::Free(String::new());
    while let Some((f, w)) = r.field()? {
        match f {
            1 => {
                let v = int(&w, "dim_value")?;
                d = if v > 0 {
                    Dim::Fixed(v as usize)
                } else {
                    Dim::Free(String::new())
                };
            }
            2 => d = Dim::Free(string(&w, "dim_param")?),
            _ => {}
        }
    }
    Ok(d)
}

fn value_info(b: &[u8]) -> R<ValueInfo> {
    let mut r = Reader::new(b);
    let mut v = ValueInfo {
        name: String::new(),
        dims: None,
        elem_type: 0,
    };
    while let Some((f, w)) = r.field()? {
        match (f, w) {
            (1, w) => v.name = string(&w, "value name")?,
            (2, Wire::Bytes(tp)) => {
                // TypeProto.tensor_type (1) → elem_type (1), shape (2) → dim (1)*
                let mut tr = Reader::new(tp);
                while let Some((f, w)) = tr.field()? {
                    if let (1, Wire::Bytes(tt)) = (f, w) {
                        let mut ttr = Reader::new(tt);
                        while let Some((f, w)) = ttr.field()? {
                            match (f, w) {
                                (1, w) => v.elem_type = int(&w, "elem_type")?,
                                (2, Wire::Bytes(shape)) => {
                                    let mut dims = Vec::new();
                                    let mut sr = Reader::new(shape);
                                    while let Some((f, w)) = sr.field()? {
                                        if let (1, Wire::Bytes(d)) = (f, w) {
                                            dims.push(dimension(d)?);
                                        }
                                    }
                                    v.dims = Some(dims);
                                }
                                _ => {}
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(v)
}

#[derive(Debug, Clone, Default)]
pub struct GraphProto {
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

fn graph(b: &[u8]) -> R<GraphProto> {
    let mut r = Reader::new(b);
    let mut g = GraphProto::default();
    while let Some((f, w)) = r.field()? {
        match (f, w) {
            (1, Wire::Bytes(b)) => g.nodes.push(node(b)?),
            (5, Wire::Bytes(b)) => g.initializers.push(tensor(b)?),
            (11, Wire::Bytes(b)) => g.inputs.push(value_info(b)?),
            (12, Wire::Bytes(b)) => g.outputs.push(value_info(b)?),
            (15, _) => return err("sparse initializers are not supported"),
            _ => {}
        }
    }
    Ok(g)
}

#[derive(Debug, Clone, Default)]
pub struct ModelProto {
    pub ir_version: i64,
    /// Version of the default ("" / "ai.onnx") operator set.
    pub opset: Option<i64>,
    pub producer: String,
    pub graph: GraphProto,
}

/// Decode a serialized ModelProto (the bytes of an `.onnx` file).
pub fn decode_model(b: &[u8]) -> std::result::Result<ModelProto, DecodeError> {
    let mut r = Reader::new(b);
    let mut m = ModelProto::default();
    let mut have_graph = false;
    while let Some((f, w)) = r.field()? {
        match (f, w) {
            (1, w) => m.ir_version = int(&w, "ir_version")?,
            (2, w) => m.producer = string(&w, "producer_name")?,
            (7, Wire::Bytes(b)) => {
                m.graph = graph(b)?;
                have_graph = true;
            }
            (8, Wire::Bytes(b)) => {
                let (mut domain, mut version) = (String::new(), 0);
                let mut or = Reader::new(b);
                while let Some((f, w)) = or.field()? {
                    match f {
                        1 => domain = string(&w, "opset domain")?,
                        2 => version = int(&w, "opset version")?,
                        _ => {}
                    }
                }
                if domain.is_empty() || domain == "ai.onnx" {
                    m.opset = Some(version);
                }
            }
            _ => {}
        }
    }
    if !have_graph {
        return err("no graph in the file (is it an ONNX model?)");
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_truncation() {
        let mut r = Reader::new(&[0xac, 0x02]);
        assert_eq!(r.varint().unwrap(), 300);
        assert!(Reader::new(&[0x80]).varint().is_err());
        assert!(decode_model(&[0x0a, 0x05, 0x01]).is_err());
        assert!(decode_model(&[]).is_err());
    }

    #[test]
    fn packed_and_unpacked_ints() {
        let mut v = Vec::new();
        push_ints(&Wire::Bytes(&[1, 2, 0xac, 0x02]), &mut v, "x").unwrap();
        push_ints(&Wire::Varint(7), &mut v, "x").unwrap();
        assert_eq!(v, [1, 2, 300, 7]);
    }
}
