//! Shared helpers for integration tests that read `../shared/fixtures`.
#![allow(dead_code)]

use std::path::PathBuf;

/// The fixture file, or `None` (test skips) when absent and `ZHLLAMA_REQUIRE_FIXTURES` is unset.
pub fn fixture(name: &str) -> Option<PathBuf> {
    let dir = std::env::var("ZHLLAMA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        });
    let p = dir.join(name);
    if p.exists() {
        return Some(p);
    }
    if std::env::var("ZHLLAMA_REQUIRE_FIXTURES").is_ok_and(|v| v == "1") {
        panic!(
            "fixture {} is missing and ZHLLAMA_REQUIRE_FIXTURES=1",
            p.display()
        );
    }
    eprintln!(
        "skipping: fixture {} not found (set ZHLLAMA_FIXTURES)",
        p.display()
    );
    None
}
