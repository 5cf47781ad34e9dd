//! Counts in words: "1 image", "2 images" (never "1 images").

/// `n` with the singular for 1 and the plural otherwise.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
