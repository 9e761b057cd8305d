//! The docs and the code say the same: every flag `--help` lists is in the
//! README's flag list (the same text) and in the operations guide's table.

/// The flags `--help` lists, in order.
fn flags() -> Vec<String> {
    natter::config::USAGE
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .map(|l| format!("--{}", l.split_whitespace().next().unwrap()))
        .collect()
}

fn read(path: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_readme_shows_the_help_text() {
    let usage = natter::config::USAGE;
    let options = &usage[usage.find("Options:").unwrap()..];
    let readme = read("README.md");
    assert!(
        readme.contains(options),
        "README.md's flag list differs from `natter --help`: copy the Options block"
    );
}

#[test]
fn the_operations_guide_has_every_flag() {
    let guide = read("docs/operations.md");
    let flags = flags();
    assert!(flags.len() > 20, "{flags:?}");
    for flag in flags {
        assert!(
            guide.contains(&format!("| `{flag}")),
            "docs/operations.md has no row for {flag}"
        );
    }
}
