//! Run an ONNX segmentation model on images: load the model ([`model`]),
//! execute it on the CPU ([`cpu`]) or on wgpu ([`gpu`]), patch by patch with a
//! MONAI-style sliding window whose overlapping outputs are blended
//! ([`window`]), and write probability maps ([`pipeline`]).
//!
//! Tensor layout is ONNX's (row-major). The spatial axes (D, H, W) of an NCDHW
//! model input are the NIfTI array axes (i, j, k) — what nibabel returns and
//! MONAI feeds a network — so a model trained with MONAI on nibabel-loaded
//! arrays sees the same orientation here.

pub mod cpu;
pub mod exec;
pub mod gpu;
pub mod model;
pub mod pipeline;
pub mod proto;
pub mod shape;
pub mod tensor;
pub mod window;

pub use exec::{Backend, Session};
pub use model::Model;
pub use tensor::Tensor;
