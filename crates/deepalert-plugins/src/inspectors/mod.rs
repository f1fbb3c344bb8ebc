//! Built-in inspectors. Each folder has a README with its options.

pub mod abuseipdb;
#[cfg(feature = "aws")]
pub mod aws_context;
pub mod inventory;
pub mod reputation;
pub mod threat_list;
pub mod virustotal;

use std::path::{Path, PathBuf};

/// Reads the lines of a list file that carry data: no blanks, no `#` comments.
pub(crate) fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

pub fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Lower-cased, without a trailing dot.
pub(crate) fn normalize_host(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}
