//! Expressions inside `{{ }}` and conditions inside `{% if %}`: a recursive descent
//! parser over [`super::lex`]'s tokens. What minijinja had and this language does not
//! (operators that build values, list literals, function calls, tests) is refused here by
//! name, so an author moving a template over is told what to write instead.

use super::ast::{Base, Condition, Expr, Segment};
use super::filters::Filter;
use super::lex::{describe, lex, Tok};
use super::{Fail, MAX_NESTING, MAX_PATH_LEN};
use serde_json::Value;

/// Why an operator is refused, naming it.
fn refuse_operator(at: usize, op: &str) -> Fail {
    let message = match op {
        "~" | "+" => format!(
            "the `{op}` operator: templates cannot join values; write the parts side by side, \
             `{{{{ a }}}}{{{{ b }}}}`"
        ),
        "-" | "*" | "/" | "%" | "**" | "//" => {
            format!("the `{op}` operator: templates do not compute values")
        }
        "{" => "dict literals: templates cannot build values".to_owned(),
        "=" => "assignment: templates have no variables".to_owned(),
        _ => return Fail::Syntax(at, format!("unexpected `{op}`")),
    };
    Fail::Forbidden(at, message)
}

struct Parser<'s> {
    tokens: Vec<(usize, Tok<'s>)>,
    next: usize,
    /// Offset of the end of the tag, for "expected ..." at the end.
    end: usize,
    depth: usize,
}

impl<'s> Parser<'s> {
    fn new(text: &'s str, base: usize) -> Result<Self, Fail> {
        Ok(Parser {
            tokens: lex(text, base)?,
            next: 0,
            end: base + text.len(),
            depth: 0,
        })
    }

    fn peek(&self) -> Option<&Tok<'s>> {
        self.tokens.get(self.next).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.tokens.get(self.next).map_or(self.end, |(o, _)| *o)
    }

    fn bump(&mut self) -> Option<(usize, Tok<'s>)> {
        let t = self.tokens.get(self.next).cloned();
        self.next += 1;
        t
    }

    fn eat(&mut self, tok: &Tok<'_>) -> bool {
        if self.peek() == Some(tok) {
            self.next += 1;
            true
        } else {
            false
        }
    }

    /// What is wrong with the next token, where a value or the end was wanted.
    fn unexpected(&self, wanted: &str) -> Fail {
        let at = self.offset();
        match self.peek() {
            None => Fail::Syntax(at, format!("expected {wanted}")),
            Some(Tok::Other(op)) => refuse_operator(at, op),
            Some(Tok::OpenBracket) => Fail::Forbidden(at, "list literals: templates cannot build values".into()),
            Some(Tok::Ident("is")) => Fail::Forbidden(
                at,
                "tests (`is defined`, `is none`): write `{% if field %}` or `{% if field == none %}`".into(),
            ),
            Some(Tok::Ident("in")) => Fail::Forbidden(at, "the `in` operator: compare with `==` instead".into()),
            Some(Tok::Ident("if")) => Fail::Forbidden(at, "inline `if`: use `{% if %}` blocks".into()),
            Some(Tok::Ident(word)) => Fail::Syntax(at, format!("expected {wanted}, got `{word}`")),
            Some(other) => Fail::Syntax(at, format!("expected {wanted}, got {}", describe(other))),
        }
    }

    fn finish(&self) -> Result<(), Fail> {
        match self.peek() {
            None => Ok(()),
            Some(Tok::Cmp(_)) => Err(Fail::Syntax(
                self.offset(),
                "comparisons belong in `{% if %}`, not in `{{ }}`".into(),
            )),
            Some(_) => Err(self.unexpected("the end of the tag")),
        }
    }

    fn expr(&mut self) -> Result<Expr, Fail> {
        let at = self.offset();
        let base = self.base()?;
        let mut filters = Vec::new();
        while self.eat(&Tok::Pipe) {
            filters.push(self.filter()?);
        }
        Ok(Expr { at, base, filters })
    }

    fn base(&mut self) -> Result<Base, Fail> {
        let at = self.offset();
        let literal = match self.peek() {
            Some(Tok::Ident("true" | "True")) => Value::Bool(true),
            Some(Tok::Ident("false" | "False")) => Value::Bool(false),
            Some(Tok::Ident("none" | "None" | "null")) => Value::Null,
            Some(Tok::Int(n)) => Value::from(*n),
            Some(Tok::Float(f)) => Value::from(*f),
            Some(Tok::Str(s)) => Value::from(s.clone()),
            Some(Tok::Ident(name)) if !matches!(*name, "and" | "or" | "not" | "is" | "in" | "if") => {
                let name = *name;
                self.next += 1;
                if self.peek() == Some(&Tok::Open) {
                    return Err(Fail::Forbidden(
                        at,
                        format!("calling `{name}(...)`: templates have no functions"),
                    ));
                }
                return self.path(at, name);
            }
            _ => return Err(self.unexpected("a field or a value")),
        };
        self.next += 1;
        Ok(Base::Literal(literal))
    }

    fn path(&mut self, at: usize, first: &str) -> Result<Base, Fail> {
        let mut segments = vec![Segment::Key(first.to_owned())];
        loop {
            let segment = if self.eat(&Tok::Dot) {
                match self.bump() {
                    Some((_, Tok::Ident(k))) => Segment::Key(k.to_owned()),
                    Some((_, Tok::Int(i))) if i >= 0 => Segment::Index(i as usize),
                    _ => {
                        self.next -= 1;
                        return Err(self.unexpected("a field name after `.`"));
                    }
                }
            } else if self.eat(&Tok::OpenBracket) {
                let segment = match self.bump() {
                    Some((_, Tok::Str(k))) => Segment::Key(k),
                    Some((_, Tok::Int(i))) if i >= 0 => Segment::Index(i as usize),
                    _ => {
                        self.next -= 1;
                        return Err(self.unexpected("a quoted name or an index in `[ ]`"));
                    }
                };
                if !self.eat(&Tok::CloseBracket) {
                    return Err(self.unexpected("`]`"));
                }
                segment
            } else {
                break;
            };
            segments.push(segment);
            if segments.len() > MAX_PATH_LEN {
                return Err(Fail::Forbidden(
                    at,
                    format!("a field path of more than {MAX_PATH_LEN} parts"),
                ));
            }
        }
        Ok(Base::Path(segments))
    }

    fn filter(&mut self) -> Result<(usize, Filter), Fail> {
        let at = self.offset();
        let name = match self.bump() {
            Some((_, Tok::Ident(name))) => name,
            _ => {
                self.next -= 1;
                return Err(self.unexpected("a filter name after `|`"));
            }
        };
        let mut args = Vec::new();
        if self.eat(&Tok::Open) && !self.eat(&Tok::Close) {
            loop {
                let arg_at = self.offset();
                match self.base()? {
                    Base::Literal(v) => args.push(v),
                    Base::Path(_) => {
                        return Err(Fail::Forbidden(
                            arg_at,
                            format!("a field as an argument of `{name}`: filter arguments are literals"),
                        ))
                    }
                }
                if self.eat(&Tok::Close) {
                    break;
                }
                if !self.eat(&Tok::Comma) {
                    return Err(self.unexpected("`,` or `)`"));
                }
            }
        }
        Ok((at, Filter::new(name, &args, at)?))
    }

    fn nest(&mut self, at: usize) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(Fail::Forbidden(
                at,
                format!("a condition nested deeper than {MAX_NESTING}"),
            ));
        }
        Ok(())
    }

    /// `or` binds loosest, then `and`, then `not`, then a comparison.
    fn condition(&mut self) -> Result<Condition, Fail> {
        let mut any = vec![self.all()?];
        while self.eat(&Tok::Ident("or")) {
            any.push(self.all()?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Condition::Any(any)
        })
    }

    fn all(&mut self) -> Result<Condition, Fail> {
        let mut all = vec![self.negation()?];
        while self.eat(&Tok::Ident("and")) {
            all.push(self.negation()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Condition::All(all)
        })
    }

    fn negation(&mut self) -> Result<Condition, Fail> {
        let at = self.offset();
        if self.eat(&Tok::Ident("not")) {
            self.nest(at)?;
            let inner = self.negation()?;
            self.depth -= 1;
            return Ok(Condition::Not(Box::new(inner)));
        }
        if self.eat(&Tok::Open) {
            self.nest(at)?;
            let inner = self.condition()?;
            self.depth -= 1;
            if !self.eat(&Tok::Close) {
                return Err(self.unexpected("`)`"));
            }
            return Ok(inner);
        }
        let left = self.expr()?;
        match self.peek() {
            Some(Tok::Cmp(op)) => {
                let op = *op;
                self.next += 1;
                Ok(Condition::Compare(left, op, self.expr()?))
            }
            _ => Ok(Condition::Truthy(left)),
        }
    }
}

/// The expression of a `{{ }}` whose inside is `text`, starting at byte `base`.
pub(crate) fn substitution(text: &str, base: usize) -> Result<Expr, Fail> {
    let mut p = Parser::new(text, base)?;
    let expr = p.expr()?;
    p.finish()?;
    Ok(expr)
}

/// The condition of an `if` or `elif` whose rest is `text`, starting at byte `base`.
pub(crate) fn condition(text: &str, base: usize) -> Result<Condition, Fail> {
    let mut p = Parser::new(text, base)?;
    let condition = p.condition()?;
    p.finish()?;
    Ok(condition)
}
