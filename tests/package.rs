//! The Debian package's files say what the code does. Whoever adds a flag to
//! `natter --help` must document it in the man page (`pkg/natter.8`) and in
//! the `/etc/default/natter` template (`pkg/natter.default`); the packaged
//! units must stay the ones `docs/` describes; the versions must agree.
//! `pkg/check-package.sh` (run by CI) checks the built package itself.

use natter::config::{Invocation, USAGE, parse_args};

fn read(path: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::read_to_string(format!("{root}/{path}")).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// One option of `--help`: its names (`--listen`; `-h`, `--help`), what it
/// takes (`ADDR`), its lines as printed, and its default if the help gives one.
#[derive(Debug)]
struct Flag {
    names: Vec<String>,
    value: Option<String>,
    lines: Vec<String>,
    default: Option<String>,
}

/// Every option in `--help`'s Options block, in order.
fn flags() -> Vec<Flag> {
    let options = USAGE
        .split_once("Options:\n")
        .expect("USAGE has an Options: block")
        .1;
    let options = options.split("\n\n").next().unwrap();
    let mut flags: Vec<Flag> = Vec::new();
    for line in options.lines() {
        if let Some(rest) = line.strip_prefix("  -") {
            let column = rest.split("  ").next().unwrap();
            let names = format!("-{column}")
                .split(", ")
                .map(|name| name.split_whitespace().next().unwrap().to_string())
                .collect();
            let value = column.split_whitespace().nth(1).map(str::to_string);
            flags.push(Flag {
                names,
                value,
                lines: vec![line.to_string()],
                default: None,
            });
        } else {
            let flag = flags.last_mut().expect("Options: starts with a flag");
            flag.lines.push(line.to_string());
        }
    }
    for flag in &mut flags {
        let text = flag.lines.join(" ");
        flag.default = text.split_once("[default: ").map(|(_, rest)| {
            let end = rest.find([']', ',', ';']).unwrap_or(rest.len());
            rest[..end].trim().to_string()
        });
    }
    assert!(flags.len() > 20, "{flags:?}");
    flags
}

/// The text a roff source line shows, near enough to find words in: macro
/// names, quotes and font changes gone, escapes turned into their characters.
fn plain(line: &str) -> String {
    if line.starts_with(".\\\"") {
        return String::new();
    }
    let text = match line.strip_prefix('.') {
        Some(macro_line) => {
            let (name, args) = macro_line.split_once(' ').unwrap_or((macro_line, ""));
            // `.BI \-\-listen " ADDR"`: the arguments, each in turn bold and
            // italic, with nothing between them; `.B a b`: one font, spaced.
            let alternating = ["BI", "BR", "IB", "IR", "RB", "RI"].contains(&name);
            macro_args(args).join(if alternating { "" } else { " " })
        }
        None => line.to_string(),
    };
    let mut text = text;
    for (escape, shown) in [
        ("\\-", "-"),
        ("\\fB", ""),
        ("\\fI", ""),
        ("\\fR", ""),
        ("\\fP", ""),
        ("\\(ha", "^"),
        ("\\(aq", "'"),
        ("\\&", ""),
        ("\\e", "\\"),
    ] {
        text = text.replace(escape, shown);
    }
    text
}

/// A macro's arguments: split at spaces, except inside double quotes.
fn macro_args(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut arg = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in args.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    out.push(std::mem::take(&mut arg));
                }
                started = false;
            }
            c => {
                arg.push(c);
                started = true;
            }
        }
    }
    if started {
        out.push(arg);
    }
    out
}

/// The lines of the man page's section `name` (after `.SH name`).
fn man_section(name: &str) -> Vec<String> {
    let man = read("pkg/natter.8");
    let heading = format!(".SH {name}");
    let mut lines = man
        .lines()
        .skip_while(|l| *l != heading && *l != format!(".SH \"{name}\""));
    assert!(lines.next().is_some(), "pkg/natter.8 has no {heading}");
    lines
        .take_while(|l| !l.starts_with(".SH "))
        .map(str::to_string)
        .collect()
}

/// The `.TP` entries of a man page section: (tag, body), both as plain text
/// with whitespace collapsed.
fn man_entries(section: &str) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut lines = man_section(section).into_iter();
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    while let Some(line) = lines.next() {
        if line == ".TP" {
            let tag = lines.next().unwrap_or_default();
            entries.push((squeeze(&plain(&tag)), String::new()));
        } else if line == ".PP" || line.starts_with(".SS") {
            // A paragraph after the entries belongs to none of them.
            entries.push((String::new(), String::new()));
        } else if let Some((_, body)) = entries.last_mut() {
            *body = squeeze(&format!("{body} {}", plain(&line)));
        }
    }
    entries
}

#[test]
fn the_man_page_has_every_flag_with_its_default() {
    let entries = man_entries("OPTIONS");
    for flag in flags() {
        let first = &flag.names[0];
        let entry = entries.iter().find(|(tag, _)| {
            let words: Vec<&str> = tag.split([' ', ',']).collect();
            flag.names.iter().all(|name| words.contains(&name.as_str()))
        });
        let Some((_, body)) = entry else {
            panic!(
                "pkg/natter.8 has no entry for {first} under .SH OPTIONS: add a `.TP` entry \
                 (tag `{}`) saying what it does{}",
                match &flag.value {
                    Some(v) => format!(".BI {} \" {v}\"", first.replace('-', "\\-")),
                    None => format!(".B {}", first.replace('-', "\\-")),
                },
                match &flag.default {
                    Some(d) => format!(", ending `Default: {d}.`"),
                    None => String::new(),
                }
            )
        };
        if let Some(default) = &flag.default {
            assert!(
                body.contains(&format!("Default: {default}.")),
                "pkg/natter.8: the entry for {first} must say `Default: {default}.` as \
                 `natter --help` does; it says: {body}"
            );
        }
    }
}

#[test]
fn the_etc_default_template_lists_every_flag_with_its_default() {
    let template = read("pkg/natter.default");
    for flag in flags() {
        if flag.names.iter().any(|n| n == "--help" || n == "--version") {
            continue;
        }
        let commented: Vec<String> = flag.lines.iter().map(|l| format!("#{l}")).collect();
        let block = commented.join("\n");
        assert!(
            template.contains(&format!("{block}\n")),
            "pkg/natter.default (installed as /etc/default/natter) must list {} as \
             `natter --help` prints it, each line behind a `#`:\n{block}",
            flag.names[0]
        );
    }
}

/// The value of `NATTER_OPTS` in the template, checked to be a line that the
/// shell (`. /etc/default/natter`) and systemd (`EnvironmentFile=`) read alike.
fn natter_opts() -> String {
    let template = read("pkg/natter.default");
    let mut opts = None;
    for line in template.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let value = line
            .strip_prefix("NATTER_OPTS=\"")
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| {
                panic!(
                    "pkg/natter.default: every line is a comment, blank, or \
                     NATTER_OPTS=\"...\"; got {line:?}"
                )
            });
        assert!(
            !value.contains(['"', '\'', '\\', '$', '`']),
            "pkg/natter.default: NATTER_OPTS must hold no quote, backslash, $ or `, \
             which the shell and systemd read differently: {value:?}"
        );
        assert!(opts.is_none(), "pkg/natter.default sets NATTER_OPTS twice");
        opts = Some(value.to_string());
    }
    opts.expect("pkg/natter.default sets NATTER_OPTS")
}

#[test]
fn the_shipped_flags_parse() {
    let opts = natter_opts();
    match parse_args(opts.split_whitespace()) {
        Ok(Invocation::Run(_)) => {}
        other => panic!("NATTER_OPTS={opts:?} in pkg/natter.default: {other:?}"),
    }
}

/// A unit file's settings, in order: (section, key, value), comments and
/// blank lines left out.
fn unit(path: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut settings = Vec::new();
    for line in read(path).lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{path}: not a setting: {line}"));
        settings.push((section.clone(), key.trim().into(), value.trim().into()));
    }
    settings
}

/// The settings of `unit` except those keyed `keys`.
fn without(unit: &[(String, String, String)], keys: &[&str]) -> Vec<(String, String, String)> {
    unit.iter()
        .filter(|(_, key, _)| !keys.contains(&key.as_str()))
        .cloned()
        .collect()
}

/// The one value of `key` in `unit`.
fn value<'a>(unit: &'a [(String, String, String)], key: &str) -> &'a str {
    let values: Vec<&str> = unit
        .iter()
        .filter(|(_, k, _)| k == key)
        .map(|(_, _, v)| v.as_str())
        .collect();
    assert_eq!(values.len(), 1, "{key}: {values:?}");
    values[0]
}

#[test]
fn the_packaged_service_is_the_documented_one() {
    let packaged = unit("pkg/natter.service");
    let documented = unit("docs/natter.service");
    assert_eq!(
        without(
            &packaged,
            &["ExecStart", "EnvironmentFile", "Documentation"]
        ),
        without(&documented, &["ExecStart"]),
        "pkg/natter.service and docs/natter.service differ in more than ExecStart, \
         EnvironmentFile and Documentation: change both"
    );
    assert_eq!(
        value(&packaged, "ExecStart"),
        "/usr/bin/natter $NATTER_OPTS"
    );
    assert_eq!(
        value(&packaged, "EnvironmentFile"),
        "-/etc/default/natter",
        "the service must start without /etc/default/natter too (the leading -)"
    );
    assert_eq!(value(&packaged, "Documentation"), "man:natter(8)");
    // The package's default flags are the hardened ones the docs show.
    assert_eq!(
        value(&documented, "ExecStart"),
        format!("/usr/local/bin/natter {}", natter_opts()),
        "NATTER_OPTS in pkg/natter.default and the flags in docs/natter.service differ"
    );
}

#[test]
fn the_packaged_socket_is_the_documented_one() {
    let packaged = unit("pkg/natter.socket");
    assert_eq!(
        without(&packaged, &["Documentation"]),
        unit("docs/natter.socket"),
        "pkg/natter.socket and docs/natter.socket differ: change both"
    );
    assert_eq!(value(&packaged, "Documentation"), "man:natter(8)");
}

#[test]
fn the_man_page_has_every_signal_and_command() {
    let signals = man_section("SIGNALS")
        .iter()
        .map(|l| plain(l))
        .collect::<Vec<_>>()
        .join(" ");
    let signals: Vec<&str> = signals
        .split(|c: char| !c.is_ascii_alphanumeric())
        .collect();
    let guide = read("docs/operations.md");
    let rows = guide.lines().filter(|l| l.starts_with("| SIG"));
    let mut names: Vec<&str> = rows
        .flat_map(|row| row.split(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| w.starts_with("SIG") && w.len() > 3)
        .collect();
    names.dedup();
    assert!(names.len() >= 5, "{names:?}");
    for name in names {
        assert!(
            signals.contains(&name),
            "docs/operations.md lists {name}; pkg/natter.8's SIGNALS section does not"
        );
    }
    let commands = man_entries("COMMANDS");
    for line in natter::command::HELP.iter().skip(1) {
        let command = line.trim_start_matches("*** ").split_whitespace().next();
        let command = command.unwrap();
        assert!(
            commands.iter().any(|(tag, _)| tag.starts_with(command)),
            "/help lists {command}; pkg/natter.8's COMMANDS section does not"
        );
    }
}

#[test]
fn the_versions_agree() {
    let version = env!("CARGO_PKG_VERSION");
    let debian = read("pkg/changelog");
    let first = debian.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("natter ({version}-")),
        "pkg/changelog (the Debian changelog) must start with an entry for \
         {version}-1 (`dch -c pkg/changelog -v {version}-1`); it starts: {first}"
    );
    let man = read("pkg/natter.8");
    let th = man.lines().find(|l| l.starts_with(".TH ")).unwrap();
    assert!(
        th.contains(&format!("\"natter {version}\"")),
        "pkg/natter.8's .TH line must name natter {version}: {th}"
    );
    assert!(
        read("CHANGELOG.md").contains(&format!("\n## {version}")),
        "CHANGELOG.md has no `## {version}` heading"
    );
}
