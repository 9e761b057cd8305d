//! Arbitrary bytes as requested names, through `natter::names`, with the
//! invariants of `tests/name_props.rs` asserted on every input.
//!
//! Input layout: the bytes up to the first `\n` are a name someone holds,
//! the rest a name someone asks for (no `\n`: the whole input is asked for,
//! and nobody holds a name). Each is checked on its own against the spec in
//! `tests/model` (`check_name`); then the pair is judged the way `chat.rs`
//! judges a `/nick` while the first is held, and the refusal's echo of the
//! typed bytes goes through the cleaner, as the server sends it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use natter::clean::{clean, cleaned_len};
use natter::names::{check_single_script, name_key, name_skeleton, parse_name};

// The specification shared with the property tests.
#[path = "../../tests/model/mod.rs"]
mod model;

use model::{assert_safe, check_name, model_clean};

fuzz_target!(|data: &[u8]| {
    let (held, asked) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };

    check_name(asked);
    // A refusal quotes what was typed, cleaned.
    let echo = clean(asked);
    assert_eq!(echo, model_clean(asked));
    assert_eq!(cleaned_len(asked), echo.len());
    assert_safe(echo.as_bytes());

    let Some(held) = held else {
        return;
    };
    check_name(held);
    let (Ok(held), Ok(asked)) = (parse_name(held), parse_name(asked)) else {
        return;
    };
    // The same key means the same name, and so the same look.
    if held.key == asked.key {
        assert_eq!(held.skeleton, asked.skeleton, "same key, other skeleton");
    }
    // What chat.rs would answer, while `held` is someone else's: taken,
    // taken as a look-alike, refused for scripts, or granted. Whichever it
    // is, the look-alike relation is symmetric and computed from keys only.
    let taken = held.key == asked.key;
    let looks_alike = held.skeleton == asked.skeleton;
    assert_eq!(
        looks_alike,
        name_skeleton(&name_key(&asked.display)) == name_skeleton(&name_key(&held.display))
    );
    if !taken && !looks_alike {
        let _ = check_single_script(&asked);
    }
});
