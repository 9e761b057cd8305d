//! Reading the `--motd` file: capped, framed into lines and cleaned like
//! anything a user could have typed.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::clean::clean_into;
use crate::line_buffer::{Frame, LineBuffer};

/// The motd's lines, cleaned, each ending in `\n`. Reading stops at
/// `max_motd`, so even `/dev/zero` costs no more than that; a bigger file,
/// or one whose visible form is bigger, is an error saying so.
pub fn read_motd(path: &Path, max_motd: usize, max_line: usize) -> io::Result<Vec<u8>> {
    let mut text = Vec::new();
    File::open(path)?
        .take(max_motd as u64 + 1)
        .read_to_end(&mut text)?;
    if text.len() > max_motd {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than --max-motd {max_motd} bytes"),
        ));
    }
    let mut motd = Vec::with_capacity(text.len());
    let mut lines = LineBuffer::default();
    lines.push(&text);
    while let Some(Frame::Line(line) | Frame::Cut(line)) = lines.next(max_line) {
        clean_into(&mut motd, line);
        motd.push(b'\n');
    }
    if let Some(Frame::Line(line) | Frame::Cut(line)) = lines.finish(max_line) {
        clean_into(&mut motd, line);
        motd.push(b'\n');
    }
    if motd.len() > max_motd {
        // Control characters are shown in a longer, visible form.
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} bytes once control characters are made visible, over --max-motd {max_motd}",
                motd.len()
            ),
        ));
    }
    Ok(motd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("natter-motd-unit-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn lines_are_cleaned_and_end_in_newlines() {
        let path = temp("clean", b"hello\r\n\x1b[2Jbye");
        assert_eq!(read_motd(&path, 1024, 4096).unwrap(), b"hello\n^[[2Jbye\n");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn the_cap_stops_reading_and_says_so() {
        let err = read_motd(Path::new("/dev/zero"), 1024, 4096).unwrap_err();
        assert_eq!(err.to_string(), "larger than --max-motd 1024 bytes");
        let path = temp("controls", &[0x01; 600]);
        let err = read_motd(&path, 1024, 4096).unwrap_err();
        assert!(
            err.to_string()
                .contains("once control characters are made visible"),
            "{err}"
        );
        std::fs::remove_file(path).unwrap();
    }
}
