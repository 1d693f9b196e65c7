// SPDX-License-Identifier: GPL-2.0

//! The importer example of `Documentation/importer-api.rst` is the code the
//! test importer runs: the document includes it from
//! `tests/importer/importer_main.rs` between two markers. These tests keep
//! the inclusion and the source in step and the example complete and short
//! (issue 18: "a complete importer in under 60 lines").

use std::fs;
use std::path::PathBuf;

const START: &str = "importer-example-start";
const END: &str = "importer-example-end";
/// The bound: a complete importer in under 60 lines.
const MAX_LINES: usize = 59;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The lines strictly between the markers of `src`; each marker once.
fn example(src: &str) -> Vec<&str> {
    let lines: Vec<&str> = src.lines().collect();
    let find = |m: &str| {
        let hits: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].trim() == format!("// {m}"))
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "marker `// {m}` must appear once, found {hits:?}"
        );
        hits[0]
    };
    let (a, b) = (find(START), find(END));
    assert!(a < b, "start marker after end marker");
    lines[a + 1..b].to_vec()
}

#[test]
fn documentation_includes_the_importer_source() {
    let doc = read("Documentation/importer-api.rst");
    let at = doc
        .find(".. literalinclude:: ../tests/importer/importer_main.rs")
        .expect("importer-api.rst must literalinclude tests/importer/importer_main.rs");
    let opts: String = doc[at..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("   :"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        opts.contains(&format!(":start-after: {START}")),
        "options: {opts}"
    );
    assert!(
        opts.contains(&format!(":end-before: {END}")),
        "options: {opts}"
    );
}

#[test]
fn example_is_a_complete_importer_under_60_lines() {
    let src = read("tests/importer/importer_main.rs");
    let ex = example(&src);
    assert!(
        ex.len() <= MAX_LINES,
        "the example has {} lines, more than {MAX_LINES}",
        ex.len()
    );
    let text = ex.join("\n");
    // What a complete importer does with the helper: a state type, the
    // invalidation callback, creating and mapping the range, and device
    // access under the range's lock.
    for needle in [
        "impl Invalidated for",
        "fn invalidated(",
        "Mapping::new(",
        ".map(",
        ".lock()",
        ".bus(",
    ] {
        assert!(text.contains(needle), "the example lacks `{needle}`");
    }
}
