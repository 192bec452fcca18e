//! The inflated bytes of a `.nii.gz`: every gzip member in turn, each checked
//! (CRC and length) when it ends.
//!
//! Why not `flate2`'s `MultiGzDecoder`: it also reads what follows the last
//! member as a gzip header, so zero padding after the stream (which `gzip -t`,
//! Python's gzip and nibabel accept) became a "corrupt gzip" error. Here a new
//! member starts only where the next byte is gzip's first magic byte, and
//! anything else after a complete member ends the stream, as in nibabel, which
//! reads only the bytes a volume needs.

use flate2::bufread::GzDecoder;
use std::io::{BufRead, Read, Result};

/// The first two bytes of a gzip member (RFC 1952: ID1, ID2).
const ID1: u8 = 0x1f;
const ID2: u8 = 0x8b;

pub(super) struct GzMembers<R: BufRead> {
    /// The member being inflated; None once the stream has ended.
    member: Option<GzDecoder<R>>,
}

impl<R: BufRead> GzMembers<R> {
    pub(super) fn new(reader: R) -> Self {
        GzMembers {
            member: Some(GzDecoder::new(reader)),
        }
    }
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while let Some(member) = self.member.as_mut() {
            let n = member.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // The member is complete and its checksums matched.
            let Some(mut reader) = self.member.take().map(GzDecoder::into_inner) else {
                break;
            };
            // Both magic bytes: other trailing bytes that merely start with
            // 0x1f are ignored like any other, not read as a cut-short member.
            // (A lone 0x1f at the end of the buffer may be a member whose ID2
            // is not buffered yet; it is tried as one, as before.)
            let buf = reader.fill_buf()?;
            if buf.starts_with(&[ID1, ID2]) || buf == [ID1] {
                self.member = Some(GzDecoder::new(reader));
            }
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn inflate(file: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        GzMembers::new(file).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn members_are_read_in_turn_and_what_follows_the_last_is_not() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut file = gzip(&data[..1234]);
        file.extend(gzip(&[])); // bgzip's empty end-of-file member
        file.extend(gzip(&data[1234..]));
        assert_eq!(inflate(&file).unwrap(), data);
        for tail in [vec![0u8; 512], b"trailing text".to_vec(), b"\x1fjunk".to_vec()] {
            let mut padded = file.clone();
            padded.extend(&tail);
            assert_eq!(inflate(&padded).unwrap(), data);
        }
    }

    #[test]
    fn a_bad_checksum_or_a_cut_member_is_an_error() {
        let data = vec![3u8; 4000];
        let mut file = gzip(&data);
        let crc = file.len() - 8;
        file[crc] ^= 1;
        assert!(inflate(&file).is_err());
        let whole = gzip(&data);
        assert!(inflate(&whole[..whole.len() - 4]).is_err(), "length field missing");
    }
}
