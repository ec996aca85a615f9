//! Tells the code which optional CPU paths this compiler can build.
//!
//! `duplex_avx512`: AVX-512 unmasking (`#[target_feature(enable = "avx512f")]` and its intrinsics
//! are stable from Rust 1.89; the crate's rust-version is lower, so older compilers build the
//! AVX2 and portable paths only).

fn main() {
    println!("cargo:rustc-check-cfg=cfg(duplex_avx512)");
    let ac = autocfg::new();
    if ac.probe_rustc_version(1, 89) {
        println!("cargo:rustc-cfg=duplex_avx512");
    }
}
