//! Tokens of the expressions inside tags, with their byte offsets in the template. Any
//! punctuation the language has no use for becomes [`Tok::Other`], so the parser can
//! name it when it refuses it (`~`, `*`, `{`).

use super::ast::Comparison;
use super::Fail;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok<'s> {
    Ident(&'s str),
    Int(i64),
    Float(f64),
    Str(String),
    Dot,
    Pipe,
    Comma,
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    Cmp(Comparison),
    /// Any other punctuation: refused with a message by the parser.
    Other(&'s str),
}

/// Splits `text`, which starts at byte `base` of the template, into tokens with offsets.
pub(crate) fn lex(text: &str, base: usize) -> Result<Vec<(usize, Tok<'_>)>, Fail> {
    let bytes = text.as_bytes();
    let mut tokens: Vec<(usize, Tok<'_>)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let after_dot = matches!(tokens.last(), Some((_, Tok::Dot)));
        let negative = b == b'-'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
            && matches!(tokens.last(), None | Some((_, Tok::Cmp(_) | Tok::Open | Tok::Comma)));
        let tok = if b.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if b.is_ascii_alphabetic() || b == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            Tok::Ident(&text[start..i])
        } else if b.is_ascii_digit() || negative {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            // After a dot (`items.0.name`) a number is an index, never a fraction.
            let fraction =
                !after_dot && bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if fraction {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                match text[start..i].parse::<f64>() {
                    Ok(f) if f.is_finite() => Tok::Float(f),
                    _ => return Err(Fail::Syntax(base + start, "number out of range".into())),
                }
            } else {
                match text[start..i].parse::<i64>() {
                    Ok(n) => Tok::Int(n),
                    Err(_) => return Err(Fail::Syntax(base + start, "number out of range".into())),
                }
            }
        } else if b == b'"' || b == b'\'' {
            let (s, end) = string(text, i).ok_or_else(|| Fail::Syntax(base + start, "text is never closed".into()))?;
            i = end;
            Tok::Str(s)
        } else {
            let two = text.get(i..i + 2).unwrap_or("");
            let (tok, len) = match two {
                "==" => (Tok::Cmp(Comparison::Eq), 2),
                "!=" => (Tok::Cmp(Comparison::Ne), 2),
                "<=" => (Tok::Cmp(Comparison::Le), 2),
                ">=" => (Tok::Cmp(Comparison::Ge), 2),
                "**" | "//" => (Tok::Other(two), 2),
                _ => match b {
                    b'<' => (Tok::Cmp(Comparison::Lt), 1),
                    b'>' => (Tok::Cmp(Comparison::Gt), 1),
                    b'.' => (Tok::Dot, 1),
                    b'|' => (Tok::Pipe, 1),
                    b',' => (Tok::Comma, 1),
                    b'(' => (Tok::Open, 1),
                    b')' => (Tok::Close, 1),
                    b'[' => (Tok::OpenBracket, 1),
                    b']' => (Tok::CloseBracket, 1),
                    _ => {
                        let len = text[i..].chars().next().map_or(1, char::len_utf8);
                        (Tok::Other(&text[i..i + len]), len)
                    }
                },
            };
            i += len;
            tok
        };
        tokens.push((base + start, tok));
    }
    Ok(tokens)
}

/// The quoted text starting at `open` (a quote), unescaped, and the offset after it.
fn string(text: &str, open: usize) -> Option<(String, usize)> {
    let quote = text[open..].chars().next()?;
    let mut out = String::new();
    let mut chars = text[open + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                other => out.push(other),
            },
            c if c == quote => return Some((out, open + 1 + i + 1)),
            c => out.push(c),
        }
    }
    None
}

pub(crate) fn describe(tok: &Tok<'_>) -> String {
    match tok {
        Tok::Ident(s) | Tok::Other(s) => format!("`{s}`"),
        Tok::Int(n) => n.to_string(),
        Tok::Float(f) => f.to_string(),
        Tok::Str(_) => "text".into(),
        Tok::Dot => "`.`".into(),
        Tok::Pipe => "`|`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Open => "`(`".into(),
        Tok::Close => "`)`".into(),
        Tok::OpenBracket => "`[`".into(),
        Tok::CloseBracket => "`]`".into(),
        Tok::Cmp(_) => "a comparison".into(),
    }
}
