//! Volumes on disk and in memory.
//!
//! A [`Volume`] holds voxels in NIfTI storage order (i fastest, then j, then k)
//! together with its [`Geometry`]. Keeping the storage order end to end is what
//! makes component numbering match cc3d on the Fortran-ordered arrays nibabel
//! returns, and saves a transpose on every read and write.

mod atomic;
mod geometry;
mod gz;
mod nifti_file;
mod sparse_mask;

pub use atomic::{all_or_nothing, remove_stale, write_atomically};
pub use geometry::Geometry;
pub use nifti_file::{
    Header, read_f32, read_f32_channel, read_f32_volumes, read_labels, read_mask, volumes_in, write_f32, write_labels,
};

/// Voxels in storage order plus the grid they live on.
#[derive(Debug, Clone)]
pub struct Volume<T> {
    pub data: Vec<T>,
    pub geometry: Geometry,
    /// The header the volume was read with; writing derived volumes (labels,
    /// probabilities) reuses it so qform/sform/pixdim survive untouched.
    pub header: Header,
}

impl<T: Clone + Default> Volume<T> {
    /// A volume of default values (zeros) on the same grid as `like`.
    pub fn zeros_like<U>(like: &Volume<U>) -> Self {
        Volume {
            data: vec![T::default(); like.data.len()],
            geometry: like.geometry.clone(),
            header: like.header.clone(),
        }
    }
}
