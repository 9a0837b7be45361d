use lode_gpu_verify::format::{
    decode, decode_npy, encode, encode_npy, read_file, read_npy, write_file, write_npy,
};
use lode_gpu_verify::{Error, MatrixI32, MatrixI8};
use proptest::prelude::*;

use crate::common::random_matrix;

fn npy(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn format_error<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Format(s)) => s,
        other => panic!("expected a format error, got {other:?}"),
    }
}

#[test]
fn matrices_round_trip_through_binary_and_npy_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = random_matrix(7, 13, 1);
    let c = MatrixI32::from_fn(3, 4, |r, c| (r as i32 - 1) * 70_000 * (c as i32 + 1)).expect("c");
    write_file(dir.path().join("a.lmat"), &a).expect("write");
    write_npy(dir.path().join("a.npy"), &a).expect("write");
    write_npy(dir.path().join("c.npy"), &c).expect("write");
    assert_eq!(read_file::<i8>(dir.path().join("a.lmat")).expect("read"), a);
    assert_eq!(read_npy::<i8>(dir.path().join("a.npy")).expect("read"), a);
    assert_eq!(read_npy::<i32>(dir.path().join("c.npy")).expect("read"), c);
    assert!(matches!(
        read_file::<i8>(dir.path().join("missing")),
        Err(Error::Io(_))
    ));
}

#[test]
fn npy_version_2_headers_and_numpy_style_descr_are_accepted() {
    let h = "{'descr': '|i1', 'fortran_order': False, 'shape': (2, 3), }          \n";
    let m = decode_npy::<i8>(&npy(2, h, &[1, 2, 3, 0xff, 0xfe, 0x80])).expect("v2");
    assert_eq!(m.data(), &[1, 2, 3, -1, -2, -128]);
    let h = "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1), }\n";
    assert_eq!(
        decode_npy::<i32>(&npy(1, h, &(-5i32).to_le_bytes()))
            .expect("v1")
            .data(),
        &[-5]
    );
}

#[test]
fn malformed_npy_files_give_clear_errors() {
    let ok = "{'descr': '|i1', 'fortran_order': False, 'shape': (2, 2), }\n";
    assert!(format_error(decode_npy::<i8>(&npy(1, ok, &[1, 2, 3]))).contains("truncated"));
    assert!(format_error(decode_npy::<i8>(&npy(1, ok, &[1, 2, 3, 4, 5]))).contains("trailing"));
    let fortran = "{'descr': '|i1', 'fortran_order': True, 'shape': (2, 2), }\n";
    assert!(format_error(decode_npy::<i8>(&npy(1, fortran, &[0; 4]))).contains("fortran_order"));
    let f8 = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }\n";
    assert!(format_error(decode_npy::<i8>(&npy(1, f8, &[0; 8]))).contains("<f8"));
    let big = "{'descr': '>i4', 'fortran_order': False, 'shape': (1, 1), }\n";
    assert!(format_error(decode_npy::<i32>(&npy(1, big, &[0; 4]))).contains(">i4"));
    let three_d = "{'descr': '|i1', 'fortran_order': False, 'shape': (2, 2, 1), }\n";
    assert!(format_error(decode_npy::<i8>(&npy(1, three_d, &[0; 4]))).contains("2-D"));
    let one_d = "{'descr': '|i1', 'fortran_order': False, 'shape': (4,), }\n";
    assert!(format_error(decode_npy::<i8>(&npy(1, one_d, &[0; 4]))).contains("2-D"));
    assert!(format_error(decode_npy::<i8>(&npy(9, ok, &[0; 4]))).contains("version"));
    assert!(format_error(decode_npy::<i8>(b"PK\x03\x04 not numpy")).contains("magic"));
    let zero = "{'descr': '|i1', 'fortran_order': False, 'shape': (0, 2), }\n";
    assert!(matches!(
        decode_npy::<i8>(&npy(1, zero, &[])),
        Err(Error::ZeroDimension { .. })
    ));
}

#[test]
fn malformed_binary_files_give_clear_errors() {
    let good = encode(&random_matrix(3, 5, 2));
    assert!(format_error(decode::<i8>(&good[..10])).contains("header"));
    assert!(format_error(decode::<i8>(&good[..good.len() - 1])).contains("truncated"));
    let mut extra = good.clone();
    extra.push(0);
    assert!(format_error(decode::<i8>(&extra)).contains("trailing"));
    let mut magic = good.clone();
    magic[0] = b'X';
    assert!(format_error(decode::<i8>(&magic)).contains("magic"));
    let mut version = good.clone();
    version[4] = 2;
    assert!(format_error(decode::<i8>(&version)).contains("version"));
    assert!(format_error(decode::<i32>(&good)).contains("type"));
    let mut huge = good;
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(decode::<i8>(&huge), Err(Error::TooLarge { .. })));
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode::<i8>(&bytes);
        let _ = decode::<i32>(&bytes);
        let _ = decode_npy::<i8>(&bytes);
        let _ = decode_npy::<i32>(&bytes);
    }

    #[test]
    fn mutated_valid_files_never_panic_and_round_trips_are_exact(
        rows in 1usize..6, cols in 1usize..6, seed in any::<u64>(), pos in any::<usize>(), byte in any::<u8>()
    ) {
        let m: MatrixI8 = random_matrix(rows, cols, seed);
        for enc in [encode(&m), encode_npy(&m)] {
            let mut bad = enc.clone();
            let p = pos % bad.len();
            bad[p] = byte;
            let _ = decode::<i8>(&bad);
            let _ = decode_npy::<i8>(&bad);
            let _ = decode_npy::<i8>(&bad[..p]);
        }
        prop_assert_eq!(decode::<i8>(&encode(&m)).expect("bin"), m.clone());
        prop_assert_eq!(decode_npy::<i8>(&encode_npy(&m)).expect("npy"), m);
    }
}
