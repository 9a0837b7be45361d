//! Dense row-major matrices of int8 inputs and int32 outputs.
//!
//! The types validate their shape on construction so that every later stage (GEMM,
//! commitments, file formats) can rely on `data.len() == rows * cols` and non-zero
//! dimensions.

use crate::error::{Error, Result};

mod sealed {
    pub trait Sealed {}
    impl Sealed for i8 {}
    impl Sealed for i32 {}
}

/// Element types a [`Matrix`] may hold: `i8` (inputs) and `i32` (outputs).
pub trait Element:
    sealed::Sealed + Copy + Default + PartialEq + std::fmt::Debug + Send + Sync
{
    /// Size of one element in bytes.
    const SIZE: usize;
    /// Type code in the crate's binary format (see [`crate::format`]).
    const TYPE_CODE: u8;
    /// NumPy `descr` string for `.npy` files.
    const NPY_DESCR: &'static str;
    /// Append the little-endian encoding of `self`.
    fn put_le(self, out: &mut Vec<u8>);
    /// Decode from exactly `SIZE` little-endian bytes.
    fn from_le(bytes: &[u8]) -> Self;
}

impl Element for i8 {
    const SIZE: usize = 1;
    const TYPE_CODE: u8 = 1;
    const NPY_DESCR: &'static str = "|i1";
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn from_le(bytes: &[u8]) -> Self {
        bytes[0] as i8
    }
}

impl Element for i32 {
    const SIZE: usize = 4;
    const TYPE_CODE: u8 = 4;
    const NPY_DESCR: &'static str = "<i4";
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn from_le(bytes: &[u8]) -> Self {
        i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

/// Rows per band, and the side of a square, of [`Matrix::transpose_with`].
pub const TRANSPOSE_BAND: usize = 64;

/// A dense row-major matrix with non-zero dimensions.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Matrix<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

/// An int8 input matrix (A or B).
pub type MatrixI8 = Matrix<i8>;
/// An int32 output matrix (C).
pub type MatrixI32 = Matrix<i32>;

/// Checks dimensions and returns `rows * cols`.
pub(crate) fn checked_len(rows: usize, cols: usize) -> Result<usize> {
    if rows == 0 {
        return Err(Error::ZeroDimension { what: "rows" });
    }
    if cols == 0 {
        return Err(Error::ZeroDimension { what: "cols" });
    }
    // Bound each side by u32 so that indices and tile counts always fit in u64 arithmetic
    // and the byte size (up to 4 bytes per element) cannot overflow usize.
    let too_large = || Error::TooLarge {
        rows: rows as u64,
        cols: cols as u64,
    };
    if rows > u32::MAX as usize || cols > u32::MAX as usize {
        return Err(too_large());
    }
    let len = rows.checked_mul(cols).ok_or_else(too_large)?;
    len.checked_mul(4).ok_or_else(too_large)?;
    Ok(len)
}

impl<T: Element> Matrix<T> {
    /// Wraps row-major `data`; errors if its length is not `rows * cols` or a dimension is 0.
    pub fn new(rows: usize, cols: usize, data: Vec<T>) -> Result<Self> {
        let len = checked_len(rows, cols)?;
        if data.len() != len {
            return Err(Error::Length {
                what: "matrix data",
                expected: len as u64,
                actual: data.len() as u64,
            });
        }
        Ok(Self { rows, cols, data })
    }

    /// A matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Result<Self> {
        let len = checked_len(rows, cols)?;
        Ok(Self {
            rows,
            cols,
            data: vec![T::default(); len],
        })
    }

    /// Builds a matrix from a function of `(row, col)`.
    pub fn from_fn(rows: usize, cols: usize, mut f: impl FnMut(usize, usize) -> T) -> Result<Self> {
        let len = checked_len(rows, cols)?;
        let mut data = Vec::with_capacity(len);
        for r in 0..rows {
            for c in 0..cols {
                data.push(f(r, c));
            }
        }
        Ok(Self { rows, cols, data })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row-major elements.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// Mutable row-major elements (the shape cannot change through this).
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Consumes the matrix, returning its row-major elements.
    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// Element at `(row, col)`, or `None` when out of range.
    pub fn get(&self, row: usize, col: usize) -> Option<T> {
        if row < self.rows && col < self.cols {
            self.data.get(row * self.cols + col).copied()
        } else {
            None
        }
    }

    /// Row `r` as a slice.
    pub fn row(&self, r: usize) -> Result<&[T]> {
        if r >= self.rows {
            return Err(Error::IndexOutOfRange {
                what: "row",
                index: r as u64,
                count: self.rows as u64,
            });
        }
        Ok(&self.data[r * self.cols..(r + 1) * self.cols])
    }

    /// Column `c`, copied out (the storage is row-major).
    pub fn column(&self, c: usize) -> Result<Vec<T>> {
        if c >= self.cols {
            return Err(Error::IndexOutOfRange {
                what: "column",
                index: c as u64,
                count: self.cols as u64,
            });
        }
        Ok(self
            .data
            .iter()
            .skip(c)
            .step_by(self.cols)
            .copied()
            .collect())
    }

    /// The transpose (used to get B in column-major order).
    pub fn transpose(&self) -> Self {
        match self.transpose_with::<std::convert::Infallible>(|_, _| Ok(())) {
            Ok(t) => t,
            Err(never) => match never {},
        }
    }

    /// The transpose, calling `each(row0, rows)` on every band of [`TRANSPOSE_BAND`] rows of `self` (the
    /// last band may be shorter; `rows` is whole rows, row-major) right after the band was read, while it
    /// is in cache: a pass over the rows (a dot product, say) costs no second read from memory. Stops at
    /// the first error `each` returns.
    ///
    /// The copy goes by squares of [`TRANSPOSE_BAND`] on a side, so both the reads and the writes of
    /// one square stay within a few pages (an element-by-element transpose writes one cache line per
    /// element once a column is longer than the cache).
    pub fn transpose_with<E>(
        &self,
        mut each: impl FnMut(usize, &[T]) -> std::result::Result<(), E>,
    ) -> std::result::Result<Self, E> {
        let (rows, cols) = (self.rows, self.cols);
        let mut data = vec![T::default(); self.data.len()];
        for r0 in (0..rows).step_by(TRANSPOSE_BAND) {
            let r1 = (r0 + TRANSPOSE_BAND).min(rows);
            for c0 in (0..cols).step_by(TRANSPOSE_BAND) {
                let c1 = (c0 + TRANSPOSE_BAND).min(cols);
                for c in c0..c1 {
                    let dst = &mut data[c * rows + r0..c * rows + r1];
                    for (d, r) in dst.iter_mut().zip(r0..r1) {
                        *d = self.data[r * cols + c];
                    }
                }
            }
            each(r0, &self.data[r0 * cols..r1 * cols])?;
        }
        Ok(Self {
            rows: cols,
            cols: rows,
            data,
        })
    }
}
