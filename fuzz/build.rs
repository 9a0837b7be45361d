//! scripts/fuzz.sh links RocksDB from the main build's `librocksdb.a` (ROCKSDB_LIB_DIR + ROCKSDB_STATIC)
//! instead of compiling its C++ a second time; librocksdb-sys then does not ask for the C++ runtime, so ask
//! for it here.
fn main() {
    println!("cargo:rerun-if-env-changed=ROCKSDB_LIB_DIR");
    if std::env::var_os("ROCKSDB_LIB_DIR").is_some() {
        println!("cargo:rustc-link-lib=stdc++");
    }
}
