//! How text a person gave is shown back in a message: escaped so that it
//! stays on one line and cannot drive a terminal, and cut short when long.

use std::path::Path;

/// How a refused input is quoted back in an error: control characters
/// escaped, so the message stays one line and cannot drive a terminal, and
/// anything past 64 characters cut off, so a megabyte argument yields a
/// short error.
pub(crate) fn echo(input: &str) -> String {
    const SHOWN: usize = 64;
    let count = input.chars().count();
    if count <= SHOWN {
        return escaped(input);
    }
    let head: String = input.chars().take(SHOWN).collect();
    format!("{}… ({count} characters)", escaped(&head))
}

/// A path as errors show it: whole, but escaped like [`echo`] so that a
/// file name with a newline cannot split the one-line error.
pub(crate) fn shown_path(path: &Path) -> String {
    escaped(&path.to_string_lossy())
}

fn escaped(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        if is_invisible(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that show nothing, or not themselves, yet are not plain
/// spaces: a memo or key holding one prints like another (`k` and `k`
/// followed by a soft hyphen) or could make a table lie about its row. By
/// Unicode property, not by list: general category Cc (controls), Cf
/// (format: bidi overrides, zero-width joiners, tag characters), Zl and Zp
/// (line and paragraph separators), Co (private use), Cs (surrogates) and
/// Cn (unassigned), and every default-ignorable code point (Hangul fillers,
/// variation selectors, the combining grapheme joiner, musical formatting
/// marks).
pub(crate) fn is_invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    // Every key and memo of a batch passes here character by character;
    // the category tables are a binary search, and in ASCII only the
    // controls are invisible.
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            | GeneralCategory::Unassigned
    ) || is_default_ignorable(c)
}

/// Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt), a
/// property that stability policy keeps from growing outside these ranges.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_inputs_stay_short_and_on_one_line() {
        assert_eq!(echo("bob"), "bob");
        assert_eq!(echo("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        let long = "9".repeat(1_000_000);
        assert_eq!(
            echo(&long),
            format!("{}… (1000000 characters)", "9".repeat(64))
        );
    }
}
