// SPDX-License-Identifier: GPL-2.0

//! Generates p2pctl's copy of the importer's ioctl ABI from
//! `tests/include/p2pmap_importer.h` (through `p2pmap_importer_consts.h`,
//! which adds the ioctl numbers), with the bindgen CLI the project's setup
//! installs (`$BINDGEN`, else `bindgen` on `PATH`), so that the C tests,
//! the importer and p2pctl share one definition.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let include = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../include");
    let header = include.join("p2pmap_importer_consts.h");
    for h in ["p2pmap_importer.h", "p2pmap_importer_consts.h"] {
        println!("cargo:rerun-if-changed={}", include.join(h).display());
    }
    println!("cargo:rerun-if-env-changed=BINDGEN");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("abi.rs");
    let bindgen = env::var("BINDGEN").unwrap_or_else(|_| "bindgen".into());
    let status = Command::new(&bindgen)
        .arg(&header)
        .args(["--allowlist-type", "p2pmap_(map|rw|status)"])
        .args(["--allowlist-var", "P2PMAP_.*"])
        .args([
            "--with-derive-default",
            "--no-layout-tests",
            "--no-doc-comments",
        ])
        .arg("-o")
        .arg(&out)
        .arg("--")
        .arg(format!("-I{}", include.display()))
        .status()
        .unwrap_or_else(|e| panic!("{bindgen}: {e} (run scripts/setup, or set BINDGEN)"));
    assert!(status.success(), "{bindgen} failed on {}", header.display());
}
