//! Matrix files: the crate's own little-endian binary layout and NumPy `.npy`.
//!
//! Binary layout (all integers little-endian):
//!
//! | offset | size | field                                  |
//! |--------|------|----------------------------------------|
//! | 0      | 4    | magic `b"LMAT"`                        |
//! | 4      | 1    | version, `1`                           |
//! | 5      | 1    | element type: `1` = i8, `4` = i32      |
//! | 6      | 2    | reserved, must be `0`                  |
//! | 8      | 8    | rows (u64, non-zero)                   |
//! | 16     | 8    | cols (u64, non-zero)                   |
//! | 24     | …    | `rows·cols` elements, row-major, LE    |
//!
//! The file must end exactly after the data. `.npy` support covers format versions 1.0,
//! 2.0 and 3.0, dtypes `|i1` (also `<i1`, `i1`) and `<i4`, C order only, 2-D shapes.
//! Anything else is rejected with [`Error::Format`] naming the problem.

use std::path::Path;

use crate::error::{Error, Result};
use crate::matrix::{checked_len, Element, Matrix};

/// Magic bytes of the binary layout.
pub const MAGIC: [u8; 4] = *b"LMAT";
/// Version of the binary layout.
pub const VERSION: u8 = 1;
/// Header size of the binary layout.
pub const HEADER_LEN: usize = 24;

fn fmt_err(s: impl Into<String>) -> Error {
    Error::Format(s.into())
}

fn dims(rows: u64, cols: u64) -> Result<(usize, usize, usize)> {
    let too_large = || Error::TooLarge { rows, cols };
    let r = usize::try_from(rows).map_err(|_| too_large())?;
    let c = usize::try_from(cols).map_err(|_| too_large())?;
    let len = checked_len(r, c)?;
    Ok((r, c, len))
}

fn decode_elements<T: Element>(data: &[u8], len: usize) -> Result<Vec<T>> {
    let need = len
        .checked_mul(T::SIZE)
        .ok_or_else(|| fmt_err("element count overflows"))?;
    if data.len() < need {
        return Err(fmt_err(format!(
            "truncated data: need {need} bytes, have {}",
            data.len()
        )));
    }
    if data.len() > need {
        return Err(fmt_err(format!(
            "{} trailing bytes after the data",
            data.len() - need
        )));
    }
    Ok(data.chunks_exact(T::SIZE).map(T::from_le).collect())
}

/// Encodes a matrix in the binary layout.
pub fn encode<T: Element>(m: &Matrix<T>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + m.data().len() * T::SIZE);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(T::TYPE_CODE);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(m.rows() as u64).to_le_bytes());
    out.extend_from_slice(&(m.cols() as u64).to_le_bytes());
    for &v in m.data() {
        v.put_le(&mut out);
    }
    out
}

/// Decodes the binary layout, requiring element type `T`.
pub fn decode<T: Element>(bytes: &[u8]) -> Result<Matrix<T>> {
    if bytes.len() < HEADER_LEN {
        return Err(fmt_err(format!(
            "{} bytes is shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    if bytes[0..4] != MAGIC {
        return Err(fmt_err("bad magic (expected \"LMAT\")"));
    }
    if bytes[4] != VERSION {
        return Err(fmt_err(format!("unsupported version {}", bytes[4])));
    }
    if bytes[5] != T::TYPE_CODE {
        return Err(fmt_err(format!(
            "element type code {} but {} (code {}) was expected",
            bytes[5],
            T::NPY_DESCR,
            T::TYPE_CODE
        )));
    }
    if bytes[6] != 0 || bytes[7] != 0 {
        return Err(fmt_err("reserved header bytes are not zero"));
    }
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let (rows, cols, len) = dims(u64_at(8), u64_at(16))?;
    let data = decode_elements(&bytes[HEADER_LEN..], len)?;
    Matrix::new(rows, cols, data)
}

/// Writes the binary layout to `path`.
pub fn write_file<T: Element>(path: impl AsRef<Path>, m: &Matrix<T>) -> Result<()> {
    Ok(std::fs::write(path, encode(m))?)
}

/// Reads the binary layout from `path`.
pub fn read_file<T: Element>(path: impl AsRef<Path>) -> Result<Matrix<T>> {
    decode(&read_regular(path.as_ref())?)
}

/// A matrix file's bytes: only a regular file, read to the size it had when opened and refused if it has
/// more, so a FIFO, a device such as `/dev/zero` or a file that grows while read is an error, never an
/// unbounded read.
fn read_regular(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(Error::Format(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let len = meta.len();
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != len {
        return Err(Error::Format(format!(
            "{} changed size while read",
            path.display()
        )));
    }
    Ok(bytes)
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Encodes a matrix as `.npy` version 1.0 (C order).
pub fn encode_npy<T: Element>(m: &Matrix<T>) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': ({}, {}), }}",
        T::NPY_DESCR,
        m.rows(),
        m.cols()
    );
    // Pad so that magic(6) + version(2) + len(2) + header is a multiple of 64, ending in '\n'.
    let total = (10 + header.len() + 1).next_multiple_of(64);
    while 10 + header.len() + 1 < total {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(total + m.data().len() * T::SIZE);
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for &v in m.data() {
        v.put_le(&mut out);
    }
    out
}

/// A parsed `.npy` header value.
#[derive(Debug, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

/// Parses the Python dict literal of an `.npy` header (only what NumPy writes).
fn parse_header(h: &str) -> Result<Vec<(String, Value)>> {
    let s = h.trim_end_matches(['\n', ' ', '\0']).trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .ok_or_else(|| fmt_err("npy header is not a dict"))?;
    let chars: Vec<char> = inner.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let read_str = |i: &mut usize| -> Result<String> {
        let q = chars[*i];
        *i += 1;
        let start = *i;
        while *i < chars.len() && chars[*i] != q {
            *i += 1;
        }
        if *i >= chars.len() {
            return Err(fmt_err("unterminated string in npy header"));
        }
        let v: String = chars[start..*i].iter().collect();
        *i += 1;
        Ok(v)
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        if chars[i] != '\'' && chars[i] != '"' {
            return Err(fmt_err("npy header key is not a string"));
        }
        let key = read_str(&mut i)?;
        skip_ws(&mut i);
        if i >= chars.len() || chars[i] != ':' {
            return Err(fmt_err(format!("missing ':' after key '{key}'")));
        }
        i += 1;
        skip_ws(&mut i);
        if i >= chars.len() {
            return Err(fmt_err(format!("missing value for '{key}'")));
        }
        let value = match chars[i] {
            '\'' | '"' => Value::Str(read_str(&mut i)?),
            '(' => {
                let start = i + 1;
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(fmt_err("unterminated shape tuple"));
                }
                let body: String = chars[start..i].iter().collect();
                i += 1;
                let dims = body
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        p.parse::<u64>()
                            .map_err(|_| fmt_err(format!("bad shape entry '{p}'")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Value::Tuple(dims)
            }
            _ => {
                let start = i;
                while i < chars.len() && chars[i].is_alphanumeric() {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.as_str() {
                    "True" => Value::Bool(true),
                    "False" => Value::Bool(false),
                    _ => return Err(fmt_err(format!("unsupported value '{word}' for '{key}'"))),
                }
            }
        };
        out.push((key, value));
        skip_ws(&mut i);
        if i < chars.len() {
            if chars[i] != ',' {
                return Err(fmt_err("expected ',' between npy header entries"));
            }
            i += 1;
        }
    }
    Ok(out)
}

fn descr_matches<T: Element>(d: &str) -> bool {
    match T::SIZE {
        1 => matches!(d, "|i1" | "<i1" | "i1" | "=i1"),
        _ => d == T::NPY_DESCR,
    }
}

/// Decodes an `.npy` file, requiring dtype `T`.
pub fn decode_npy<T: Element>(bytes: &[u8]) -> Result<Matrix<T>> {
    if bytes.len() < 10 || !bytes.starts_with(NPY_MAGIC) {
        return Err(fmt_err("not an .npy file (bad magic)"));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, hstart): (usize, usize) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(fmt_err("truncated .npy header length"));
            }
            let l = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (
                usize::try_from(l).map_err(|_| fmt_err("header too long"))?,
                12,
            )
        }
        _ => return Err(fmt_err(format!("unsupported .npy version {major}.{minor}"))),
    };
    let hend = hstart
        .checked_add(hlen)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| fmt_err("truncated .npy header"))?;
    let header = std::str::from_utf8(&bytes[hstart..hend])
        .map_err(|_| fmt_err("npy header is not UTF-8"))?;
    let entries = parse_header(header)?;
    let get = |k: &str| entries.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let descr = match get("descr") {
        Some(Value::Str(d)) => d.clone(),
        Some(_) => {
            return Err(fmt_err(
                "'descr' is not a string (structured dtypes are unsupported)",
            ))
        }
        None => return Err(fmt_err("npy header lacks 'descr'")),
    };
    if !descr_matches::<T>(&descr) {
        return Err(fmt_err(format!(
            "unsupported dtype '{descr}': expected '{}'",
            T::NPY_DESCR
        )));
    }
    match get("fortran_order") {
        Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return Err(fmt_err(
                "fortran_order=True is unsupported; save with C order",
            ))
        }
        _ => return Err(fmt_err("npy header lacks a boolean 'fortran_order'")),
    }
    let shape = match get("shape") {
        Some(Value::Tuple(s)) => s.clone(),
        _ => return Err(fmt_err("npy header lacks a 'shape' tuple")),
    };
    let [rows, cols] = shape[..] else {
        return Err(fmt_err(format!("shape {shape:?} is not 2-D")));
    };
    let (rows, cols, len) = dims(rows, cols)?;
    let data = decode_elements(&bytes[hend..], len)?;
    Matrix::new(rows, cols, data)
}

/// Writes an `.npy` file.
pub fn write_npy<T: Element>(path: impl AsRef<Path>, m: &Matrix<T>) -> Result<()> {
    Ok(std::fs::write(path, encode_npy(m))?)
}

/// Reads an `.npy` file.
pub fn read_npy<T: Element>(path: impl AsRef<Path>) -> Result<Matrix<T>> {
    decode_npy(&read_regular(path.as_ref())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{MatrixI32, MatrixI8};

    #[test]
    fn only_a_regular_file_is_read() {
        for path in ["/dev/zero", "/"] {
            assert!(
                matches!(
                    read_npy::<i8>(path),
                    Err(Error::Format(_)) | Err(Error::Io(_))
                ),
                "{path}"
            );
        }
        assert!(matches!(
            read_file::<i8>("/dev/zero"),
            Err(Error::Format(_))
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.npy");
        let m = MatrixI8::from_fn(3, 4, |r, c| (r * 4 + c) as i8).expect("m");
        write_npy(&path, &m).expect("write");
        assert_eq!(read_npy::<i8>(&path).expect("read"), m);
    }

    #[test]
    fn binary_round_trip_and_type_check() {
        let m = MatrixI32::from_fn(3, 2, |r, c| (r as i32 - 1) * 1_000_000 + c as i32).expect("m");
        let bytes = encode(&m);
        assert_eq!(bytes.len(), HEADER_LEN + 24);
        assert_eq!(decode::<i32>(&bytes).expect("decode"), m);
        assert!(matches!(decode::<i8>(&bytes), Err(Error::Format(_))));
    }

    #[test]
    fn npy_header_is_aligned_and_parsed() {
        let m = MatrixI8::from_fn(2, 5, |r, c| (r * 5 + c) as i8 - 3).expect("m");
        let bytes = encode_npy(&m);
        let hlen = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!((10 + hlen) % 64, 0);
        assert_eq!(decode_npy::<i8>(&bytes).expect("decode"), m);
    }

    #[test]
    fn header_parser_accepts_numpy_spacing_and_order() {
        let e = parse_header("{'shape': (3,4), \"fortran_order\": False, 'descr': '<i4'}  \n")
            .expect("parse");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].1, Value::Tuple(vec![3, 4]));
    }
}
