//! The template's text and its tags: `{{ }}`, `{% %}` (if, elif, else, endif, raw), and
//! `{# #}`, with Jinja's `-` whitespace control. One pass, left to right; `if` blocks are
//! a stack at most [`MAX_NESTING`] deep. Statements minijinja had are refused by name.

use super::ast::{Branch, Node};
use super::{expr, Fail, MAX_NESTING};

/// An open `if` block: its branches so far and, after `else`, the else body.
struct Open {
    at: usize,
    branches: Vec<Branch>,
    otherwise: Option<Vec<Node>>,
}

impl Open {
    /// The body being filled: the else body after `else`, else the last branch's.
    fn body(&mut self) -> &mut Vec<Node> {
        match self.branches.last_mut() {
            Some(branch) if self.otherwise.is_none() => &mut branch.body,
            _ => self.otherwise.get_or_insert_with(Vec::new),
        }
    }
}

struct Builder {
    root: Vec<Node>,
    open: Vec<Open>,
    /// Trim the next text's leading whitespace (the last tag ended with `-`).
    trim_next: bool,
}

impl Builder {
    fn body(&mut self) -> &mut Vec<Node> {
        match self.open.last_mut() {
            Some(open) => open.body(),
            None => &mut self.root,
        }
    }

    /// Adds literal text; `trim_end` when the tag after it starts with `-`.
    fn text(&mut self, text: &str, trim_end: bool) {
        let mut text = text;
        if std::mem::take(&mut self.trim_next) {
            text = text.trim_start();
        }
        if trim_end {
            text = text.trim_end();
        }
        if text.is_empty() {
            return;
        }
        let body = self.body();
        match body.last_mut() {
            Some(Node::Text(last)) => last.push_str(text),
            _ => body.push(Node::Text(text.to_owned())),
        }
    }
}

/// Statements minijinja had, with what to write instead.
fn refused_statement(keyword: &str) -> Option<String> {
    Some(match keyword {
        "for" | "endfor" | "break" | "continue" => format!(
            "the `{keyword}` statement: templates have no loops (see \"Migrating from minijinja\" in \
             docs/workflow-language.md)"
        ),
        "set" | "endset" | "with" | "endwith" => {
            format!("the `{keyword}` statement: templates have no variables; use the field itself")
        }
        "macro" | "endmacro" | "call" | "endcall" => format!("the `{keyword}` statement: templates have no macros"),
        "filter" | "endfilter" => "the `filter` block: apply filters to one value, `{{ field | upper }}`".to_owned(),
        "include" | "import" | "from" | "extends" | "block" | "endblock" => {
            format!("the `{keyword}` statement: a template is one text")
        }
        "autoescape" | "endautoescape" | "do" => format!("the `{keyword}` statement"),
        _ => return None,
    })
}

/// Where the tag whose inside starts at `from` ends (the offset of `close`), skipping
/// quoted text so `"}}"` in a string does not end it.
fn tag_end(source: &str, from: usize, close: &str) -> Option<usize> {
    let bytes = source.as_bytes();
    let mut i = from;
    let mut quote = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if bytes[i..].starts_with(close.as_bytes()) => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// The inside of a tag between `start` and `end`, without whitespace-control marks:
/// (inside, its offset, whether it began with `-`, whether it ended with `-`).
fn inside(source: &str, start: usize, end: usize) -> (&str, usize, bool, bool) {
    let mut text = &source[start..end];
    let mut offset = start;
    let trim_before = text.starts_with('-');
    if text.starts_with(['-', '+']) {
        text = &text[1..];
        offset += 1;
    }
    let trim_after = text.ends_with('-');
    if text.ends_with(['-', '+']) {
        text = &text[..text.len() - 1];
    }
    (text, offset, trim_before, trim_after)
}

/// The `{% endraw %}` after `from`: (where its tag starts, where it ends, trim marks).
fn endraw(source: &str, from: usize) -> Option<(usize, usize, bool, bool)> {
    let mut at = from;
    while let Some(found) = source[at..].find("{%") {
        let start = at + found;
        let end = tag_end(source, start + 2, "%}")?;
        let (text, _, before, after) = inside(source, start + 2, end);
        if text.trim() == "endraw" {
            return Some((start, end + 2, before, after));
        }
        at = start + 2;
    }
    None
}

pub(crate) fn parse(source: &str) -> Result<Vec<Node>, Fail> {
    let mut b = Builder {
        root: Vec::new(),
        open: Vec::new(),
        trim_next: false,
    };
    let mut at = 0;
    while let Some(found) = source[at..].find('{') {
        let start = at + found;
        let close = match source.as_bytes().get(start + 1) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            Some(b'#') => "#}",
            _ => {
                b.text(&source[at..start + 1], false);
                at = start + 1;
                continue;
            }
        };
        let end = if close == "#}" {
            source[start + 2..].find(close).map(|i| start + 2 + i)
        } else {
            tag_end(source, start + 2, close)
        };
        let Some(end) = end else {
            return Err(Fail::Syntax(
                start,
                format!("`{}` is never closed with `{close}`", &source[start..start + 2]),
            ));
        };
        let (text, offset, trim_before, trim_after) = inside(source, start + 2, end);
        b.text(&source[at..start], trim_before);
        at = end + 2;
        b.trim_next = trim_after;
        match close {
            "}}" => {
                let e = expr::substitution(text, offset)?;
                b.body().push(Node::Substitute(e));
            }
            "%}" => {
                if let Some(after_raw) = statement(&mut b, source, (text, offset), start, at)? {
                    at = after_raw;
                }
            }
            _ => {} // a comment
        }
    }
    b.text(&source[at..], false);
    if let Some(open) = b.open.last() {
        return Err(Fail::Syntax(
            open.at,
            "`{% if %}` is never closed with `{% endif %}`".into(),
        ));
    }
    Ok(b.root)
}

/// Handles one `{% %}` whose inside is `text` at `offset`; the tag starts at `start` and
/// ends before `after`. Answers where to go on after a raw block.
fn statement(
    b: &mut Builder,
    source: &str,
    (text, offset): (&str, usize),
    start: usize,
    after: usize,
) -> Result<Option<usize>, Fail> {
    let lead = text.len() - text.trim_start().len();
    let text = text.trim();
    let keyword_len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let (keyword, rest) = text.split_at(keyword_len);
    let rest_at = offset + lead + keyword_len;
    let nothing_after = |what: &str| {
        if rest.trim().is_empty() {
            Ok(())
        } else {
            Err(Fail::Syntax(rest_at, format!("nothing may follow `{what}`")))
        }
    };
    match keyword {
        "if" => {
            if b.open.len() >= MAX_NESTING {
                return Err(Fail::Forbidden(
                    start,
                    format!("`if` blocks nested deeper than {MAX_NESTING}"),
                ));
            }
            let condition = expr::condition(rest, rest_at)?;
            b.open.push(Open {
                at: start,
                branches: vec![Branch {
                    condition,
                    body: Vec::new(),
                }],
                otherwise: None,
            });
        }
        "elif" => {
            let condition = expr::condition(rest, rest_at)?;
            match b.open.last_mut() {
                Some(open) if open.otherwise.is_none() => open.branches.push(Branch {
                    condition,
                    body: Vec::new(),
                }),
                Some(_) => return Err(Fail::Syntax(start, "`elif` after `else`".into())),
                None => return Err(Fail::Syntax(start, "`elif` without `if`".into())),
            }
        }
        "else" => {
            nothing_after("else")?;
            match b.open.last_mut() {
                Some(open) if open.otherwise.is_none() => open.otherwise = Some(Vec::new()),
                Some(_) => return Err(Fail::Syntax(start, "a second `else`".into())),
                None => return Err(Fail::Syntax(start, "`else` without `if`".into())),
            }
        }
        "endif" => {
            nothing_after("endif")?;
            let open = b
                .open
                .pop()
                .ok_or_else(|| Fail::Syntax(start, "`endif` without `if`".into()))?;
            let node = Node::If {
                branches: open.branches,
                otherwise: open.otherwise.unwrap_or_default(),
            };
            b.body().push(node);
        }
        "raw" => {
            nothing_after("raw")?;
            let Some((raw_end, raw_after, trim_before, trim_after)) = endraw(source, after) else {
                return Err(Fail::Syntax(start, "`raw` is never closed with `{% endraw %}`".into()));
            };
            // The open tag's `-%}` trims the body's start (through `trim_next`).
            b.text(&source[after..raw_end], trim_before);
            b.trim_next = trim_after;
            return Ok(Some(raw_after));
        }
        "endraw" => return Err(Fail::Syntax(start, "`endraw` without `raw`".into())),
        "" => return Err(Fail::Syntax(start, "an empty `{% %}`".into())),
        other => {
            return Err(match refused_statement(other) {
                Some(message) => Fail::Forbidden(start, message),
                None => Fail::Syntax(start, format!("unknown statement `{other}`")),
            })
        }
    }
    Ok(None)
}
