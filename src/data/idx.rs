//! The IDX format of MNIST: a magic number (two zero bytes, a type code, the number of
//! dimensions), the dimensions as big-endian u32, then the values.

use crate::error::{Error, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// An IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// The type code of unsigned bytes, the only type MNIST files use.
const UBYTE: u8 = 0x08;

/// Reads an IDX file of unsigned bytes, gunzipping it when its name ends in `.gz`.
/// Errors name the file and say what is wrong: unreadable, not gzip, a wrong magic
/// number, a type other than unsigned bytes, or fewer (or more) values than its
/// dimensions say.
pub fn read_idx(path: &Path) -> Result<Idx> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::format(path, format!("not a valid gzip file: {e}")))?;
        out
    } else {
        raw
    };
    parse(path, &bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Idx> {
    let magic = bytes.get(..4).ok_or_else(|| {
        Error::format(
            path,
            format!("{} bytes: too short for an IDX header", bytes.len()),
        )
    })?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(Error::format(
            path,
            format!(
                "wrong magic number {:02x}{:02x}{:02x}{:02x}: an IDX file starts with two zero bytes",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    if magic[2] != UBYTE {
        return Err(Error::format(
            path,
            format!(
                "IDX type code {:#04x}; only unsigned bytes (0x08) are supported",
                magic[2]
            ),
        ));
    }
    let ndim = usize::from(magic[3]);
    let header = 4 + 4 * ndim;
    let dims_bytes = bytes.get(4..header).ok_or_else(|| {
        Error::format(
            path,
            format!("truncated header: {ndim} dimensions need {header} bytes"),
        )
    })?;
    let dims: Vec<usize> = dims_bytes
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::format(path, format!("dimensions {dims:?} overflow")))?;
    let data = &bytes[header..];
    if data.len() != count {
        return Err(Error::format(
            path,
            format!(
                "{} data bytes, but dimensions {dims:?} need {count}{}",
                data.len(),
                if data.len() < count {
                    " (truncated file)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(Idx {
        dims,
        data: data.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, UBYTE, dims.len() as u8];
        for d in dims {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn parses_and_rejects_what_is_wrong() {
        let p = Path::new("t.idx");
        let ok = parse(p, &idx(&[2, 3], &[1, 2, 3, 4, 5, 6])).unwrap();
        assert_eq!(ok.dims, [2, 3]);
        assert_eq!(ok.data, [1, 2, 3, 4, 5, 6]);
        let truncated = parse(p, &idx(&[2, 3], &[1, 2, 3])).unwrap_err().to_string();
        assert!(
            truncated.contains("t.idx") && truncated.contains("truncated"),
            "{truncated}"
        );
        let mut bad = idx(&[1], &[0]);
        bad[0] = 0x1f;
        assert!(parse(p, &bad).unwrap_err().to_string().contains("magic"));
        let mut float = idx(&[1], &[0, 0, 0, 0]);
        float[2] = 0x0d;
        assert!(parse(p, &float)
            .unwrap_err()
            .to_string()
            .contains("type code"));
        assert!(parse(p, &[0, 0]).is_err());
        assert!(parse(p, &[0, 0, 8, 3, 0, 0])
            .unwrap_err()
            .to_string()
            .contains("header"));
    }
}
