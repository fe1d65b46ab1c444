//! The SOQL subset a sync engine sends: a lexer, a recursive-descent parser into [`Query`],
//! a printer (`Display`) whose output parses back to the same tree, and the evaluation of
//! conditions against typed values.
//!
//! ```text
//! query    := SELECT items FROM ident [WHERE cond] [ORDER BY order ("," order)*]
//!             [LIMIT int] [OFFSET int]
//! items    := COUNT "(" ")" | ident ("," ident)*
//! order    := ident [ASC|DESC] [NULLS (FIRST|LAST)]
//! cond     := term ((AND term)* | (OR term)*)      -- mixing AND and OR needs parentheses
//! term     := NOT term | "(" cond ")" | ident op value | ident [NOT] IN "(" value ("," value)* ")"
//!           | ident LIKE string
//! op       := = | != | <> | < | > | <= | >=
//! value    := 'string' | number | TRUE | FALSE | NULL | YYYY-MM-DD | YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)
//!           | TODAY | YESTERDAY | TOMORROW | LAST_N_DAYS:n | NEXT_N_DAYS:n
//! ```
//!
//! Keywords are case-insensitive. Field names are resolved (case-insensitively) later,
//! against the object's schema, by the query handler.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// A parse error with its 1-based column, rendered as Salesforce renders `MALFORMED_QUERY`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (column {column})")]
pub struct SoqlError {
    /// 1-based column of the offending token.
    pub column: usize,
    /// What was wrong, e.g. `unexpected token: FORM`.
    pub message: String,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The select list.
    pub select: Select,
    /// The object, as written.
    pub from: String,
    /// The WHERE condition.
    pub condition: Option<Cond>,
    /// ORDER BY items.
    pub order_by: Vec<OrderItem>,
    /// LIMIT.
    pub limit: Option<u64>,
    /// OFFSET.
    pub offset: Option<u64>,
}

/// What the query selects.
#[derive(Debug, Clone, PartialEq)]
pub enum Select {
    /// `COUNT()`.
    Count,
    /// Field names, as written.
    Fields(Vec<String>),
}

/// One ORDER BY item.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    /// The field, as written.
    pub field: String,
    /// DESC.
    pub descending: bool,
    /// NULLS FIRST (`Some(true)`) / NULLS LAST (`Some(false)`).
    pub nulls_first: Option<bool>,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=` (or `<>`)
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Gt => ">",
            CmpOp::Le => "<=",
            CmpOp::Ge => ">=",
        }
    }
}

/// A relative date literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateLiteral {
    /// TODAY
    Today,
    /// YESTERDAY
    Yesterday,
    /// TOMORROW
    Tomorrow,
    /// LAST_N_DAYS:n (today and the n days before it)
    LastNDays(u32),
    /// NEXT_N_DAYS:n (today and the n days after it)
    NextNDays(u32),
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// NULL
    Null,
    /// TRUE / FALSE
    Bool(bool),
    /// A number.
    Number(f64),
    /// A quoted string (unescaped).
    Str(String),
    /// A date.
    Date(NaiveDate),
    /// A date-time (UTC).
    DateTime(DateTime<Utc>),
    /// A relative date.
    Relative(DateLiteral),
}

/// A WHERE condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// Every child holds (two or more).
    And(Vec<Cond>),
    /// Some child holds (two or more).
    Or(Vec<Cond>),
    /// The child does not hold.
    Not(Box<Cond>),
    /// `field op value`.
    Cmp {
        /// The field, as written.
        field: String,
        /// The operator.
        op: CmpOp,
        /// The value.
        value: Literal,
    },
    /// `field [NOT] IN (values)`.
    In {
        /// The field, as written.
        field: String,
        /// NOT IN.
        negated: bool,
        /// The values.
        values: Vec<Literal>,
    },
    /// `field LIKE 'pattern'`.
    Like {
        /// The field, as written.
        field: String,
        /// The pattern (`%` any run, `_` one character).
        pattern: String,
    },
}

impl Cond {
    /// Every field named in the condition, in order.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Cond::And(cs) | Cond::Or(cs) => cs.iter().for_each(|c| c.collect_fields(out)),
            Cond::Not(c) => c.collect_fields(out),
            Cond::Cmp { field, .. } | Cond::In { field, .. } | Cond::Like { field, .. } => {
                out.push(field)
            }
        }
    }

    /// Renames every field with `f` (used to replace names as written by canonical ones).
    pub fn map_fields(&mut self, f: &impl Fn(&str) -> String) {
        match self {
            Cond::And(cs) | Cond::Or(cs) => cs.iter_mut().for_each(|c| c.map_fields(f)),
            Cond::Not(c) => c.map_fields(f),
            Cond::Cmp { field, .. } | Cond::In { field, .. } | Cond::Like { field, .. } => {
                *field = f(field)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64, String),
    Date(NaiveDate),
    DateTime(DateTime<Utc>),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Colon,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Byte offset in the query.
    at: usize,
    /// The text as written.
    text: String,
}

fn lex(q: &str) -> Result<Vec<Token>, SoqlError> {
    let b = q.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let err = |at: usize, msg: String| SoqlError {
        column: column_of(q, at),
        message: msg,
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = match c {
            b'(' => {
                i += 1;
                Tok::LParen
            }
            b')' => {
                i += 1;
                Tok::RParen
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b':' => {
                i += 1;
                Tok::Colon
            }
            b'=' => {
                i += 1;
                Tok::Op("=")
            }
            b'!' if b.get(i + 1) == Some(&b'=') => {
                i += 2;
                Tok::Op("!=")
            }
            b'<' => match b.get(i + 1) {
                Some(b'=') => {
                    i += 2;
                    Tok::Op("<=")
                }
                Some(b'>') => {
                    i += 2;
                    Tok::Op("!=")
                }
                _ => {
                    i += 1;
                    Tok::Op("<")
                }
            },
            b'>' => {
                if b.get(i + 1) == Some(&b'=') {
                    i += 2;
                    Tok::Op(">=")
                } else {
                    i += 1;
                    Tok::Op(">")
                }
            }
            b'\'' | b'"' => {
                let quote = c;
                i += 1;
                let mut s = String::new();
                let mut closed = false;
                let rest = &q[i..];
                let mut chars = rest.char_indices();
                while let Some((off, ch)) = chars.next() {
                    if ch as u32 == quote as u32 {
                        i += off + 1;
                        closed = true;
                        break;
                    }
                    if ch == '\\' {
                        match chars.next() {
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 'r')) => s.push('\r'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, 'b')) => s.push('\u{8}'),
                            Some((_, 'f')) => s.push('\u{c}'),
                            Some((_, '_')) => s.push_str("\\_"),
                            Some((_, '%')) => s.push_str("\\%"),
                            Some((_, e @ ('\'' | '"' | '\\'))) => s.push(e),
                            Some((_, other)) => {
                                return Err(err(
                                    i + off,
                                    format!("Invalid string literal '\\{other}'. Illegal character sequence '\\{other}' in string literal."),
                                ))
                            }
                            None => break,
                        }
                        continue;
                    }
                    s.push(ch);
                }
                if !closed {
                    return Err(err(
                        start,
                        "line 1:0 mismatched character '<EOF>' expecting '''".into(),
                    ));
                }
                Tok::Str(s)
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => {
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'.' | b':' | b'-' | b'+'))
                {
                    // A date-time's offset sign, or a date's dashes; stop a number at an
                    // operator-like sign that follows a plain number.
                    if matches!(b[j], b'-' | b'+' | b':') && !looks_temporal(&q[i..j]) {
                        break;
                    }
                    j += 1;
                }
                let text = &q[i..j];
                let tok = if let Some(d) = parse_date(text) {
                    Tok::Date(d)
                } else if let Some(dt) = parse_datetime_literal(text) {
                    Tok::DateTime(dt)
                } else if let Ok(n) = text.parse::<f64>() {
                    if !n.is_finite() {
                        return Err(err(start, format!("unexpected token: {text}")));
                    }
                    Tok::Num(n, text.to_owned())
                } else {
                    return Err(err(start, format!("unexpected token: {text}")));
                };
                i = j;
                tok
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'_' | b'.')) {
                    j += 1;
                }
                let s = q[i..j].to_owned();
                i = j;
                Tok::Ident(s)
            }
            _ => {
                let ch = q[i..].chars().next().unwrap_or('?');
                return Err(err(start, format!("unexpected token: {ch}")));
            }
        };
        out.push(Token {
            tok,
            at: start,
            text: q[start..i].to_owned(),
        });
    }
    Ok(out)
}

fn looks_temporal(prefix: &str) -> bool {
    // `2024-` or `2024-01-02T10` or `2024-01-02T10:00:00`: a date or date-time in progress.
    prefix.len() >= 4 && prefix.as_bytes()[..4].iter().all(u8::is_ascii_digit)
}

fn column_of(q: &str, at: usize) -> usize {
    let line_start = q[..at.min(q.len())].rfind('\n').map(|p| p + 1).unwrap_or(0);
    q[line_start..at.min(q.len())].chars().count() + 1
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

fn parse_datetime_literal(s: &str) -> Option<DateTime<Utc>> {
    if !s.contains('T') {
        return None;
    }
    if let Some(naive) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        let dt = NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
        return Some(Utc.from_utc_datetime(&dt));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------
// Parser

struct Parser<'q> {
    q: &'q str,
    toks: Vec<Token>,
    pos: usize,
}

/// Parses a query.
pub fn parse(q: &str) -> Result<Query, SoqlError> {
    let toks = lex(q)?;
    let mut p = Parser { q, toks, pos: 0 };
    let query = p.query()?;
    if let Some(t) = p.peek() {
        return Err(p.unexpected(t.clone()));
    }
    Ok(query)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn unexpected(&self, t: Token) -> SoqlError {
        SoqlError {
            column: column_of(self.q, t.at),
            message: format!("unexpected token: {}", t.text),
        }
    }

    fn eof(&self) -> SoqlError {
        SoqlError {
            column: column_of(self.q, self.q.len()),
            message: "unexpected token: <EOF>".into(),
        }
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Ident(s), .. }) if s.eq_ignore_ascii_case(kw))
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.is_kw(kw) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self
                .next()
                .map(|t| self.unexpected(t))
                .unwrap_or_else(|| self.eof()))
        }
    }

    fn expect(&mut self, want: &Tok) -> Result<(), SoqlError> {
        match self.next() {
            Some(t) if &t.tok == want => Ok(()),
            Some(t) => Err(self.unexpected(t)),
            None => Err(self.eof()),
        }
    }

    fn ident(&mut self) -> Result<String, SoqlError> {
        match self.next() {
            Some(Token {
                tok: Tok::Ident(s), ..
            }) if !is_reserved(&s) => Ok(s),
            Some(t) => Err(self.unexpected(t)),
            None => Err(self.eof()),
        }
    }

    fn uint(&mut self) -> Result<u64, SoqlError> {
        match self.next() {
            Some(Token {
                tok: Tok::Num(n, _),
                ..
            }) if n >= 0.0 && n.fract() == 0.0 => Ok(n as u64),
            Some(t) => Err(self.unexpected(t)),
            None => Err(self.eof()),
        }
    }

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_kw("SELECT")?;
        let select = if self.is_kw("COUNT") {
            self.pos += 1;
            self.expect(&Tok::LParen)?;
            self.expect(&Tok::RParen)?;
            Select::Count
        } else {
            let mut fields = vec![self.ident()?];
            while matches!(
                self.peek(),
                Some(Token {
                    tok: Tok::Comma,
                    ..
                })
            ) {
                self.pos += 1;
                fields.push(self.ident()?);
            }
            Select::Fields(fields)
        };
        self.expect_kw("FROM")?;
        let from = self.ident()?;
        let condition = if self.is_kw("WHERE") {
            self.pos += 1;
            Some(self.cond()?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.is_kw("ORDER") {
            self.pos += 1;
            self.expect_kw("BY")?;
            loop {
                let field = self.ident()?;
                let mut descending = false;
                if self.is_kw("ASC") {
                    self.pos += 1;
                } else if self.is_kw("DESC") {
                    self.pos += 1;
                    descending = true;
                }
                let mut nulls_first = None;
                if self.is_kw("NULLS") {
                    self.pos += 1;
                    if self.is_kw("FIRST") {
                        nulls_first = Some(true);
                    } else if self.is_kw("LAST") {
                        nulls_first = Some(false);
                    } else {
                        return Err(self
                            .next()
                            .map(|t| self.unexpected(t))
                            .unwrap_or_else(|| self.eof()));
                    }
                    self.pos += 1;
                }
                order_by.push(OrderItem {
                    field,
                    descending,
                    nulls_first,
                });
                if matches!(
                    self.peek(),
                    Some(Token {
                        tok: Tok::Comma,
                        ..
                    })
                ) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        let mut limit = None;
        if self.is_kw("LIMIT") {
            self.pos += 1;
            limit = Some(self.uint()?);
        }
        let mut offset = None;
        if self.is_kw("OFFSET") {
            self.pos += 1;
            offset = Some(self.uint()?);
        }
        Ok(Query {
            select,
            from,
            condition,
            order_by,
            limit,
            offset,
        })
    }

    fn cond(&mut self) -> Result<Cond, SoqlError> {
        let first = self.term()?;
        let mut items = vec![first];
        let mut kind: Option<bool> = None; // Some(true) = AND, Some(false) = OR
        loop {
            let is_and = if self.is_kw("AND") {
                true
            } else if self.is_kw("OR") {
                false
            } else {
                break;
            };
            if kind.is_some_and(|k| k != is_and) {
                // SOQL needs parentheses to mix AND and OR.
                let t = self.next().ok_or_else(|| self.eof())?;
                return Err(self.unexpected(t));
            }
            kind = Some(is_and);
            self.pos += 1;
            items.push(self.term()?);
        }
        Ok(match kind {
            None => items.pop().ok_or_else(|| self.eof())?,
            Some(true) => Cond::And(items),
            Some(false) => Cond::Or(items),
        })
    }

    fn term(&mut self) -> Result<Cond, SoqlError> {
        if self.is_kw("NOT") {
            self.pos += 1;
            return Ok(Cond::Not(Box::new(self.term()?)));
        }
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::LParen,
                ..
            })
        ) {
            self.pos += 1;
            let c = self.cond()?;
            self.expect(&Tok::RParen)?;
            return Ok(c);
        }
        let field = self.ident()?;
        let t = self.next().ok_or_else(|| self.eof())?;
        match &t.tok {
            Tok::Op(op) => {
                let op = match *op {
                    "=" => CmpOp::Eq,
                    "!=" => CmpOp::Ne,
                    "<" => CmpOp::Lt,
                    ">" => CmpOp::Gt,
                    "<=" => CmpOp::Le,
                    _ => CmpOp::Ge,
                };
                let value = self.value()?;
                Ok(Cond::Cmp { field, op, value })
            }
            Tok::Ident(kw) if kw.eq_ignore_ascii_case("LIKE") => match self.next() {
                Some(Token {
                    tok: Tok::Str(s), ..
                }) => Ok(Cond::Like { field, pattern: s }),
                Some(t) => Err(self.unexpected(t)),
                None => Err(self.eof()),
            },
            Tok::Ident(kw) if kw.eq_ignore_ascii_case("IN") || kw.eq_ignore_ascii_case("NOT") => {
                let negated = kw.eq_ignore_ascii_case("NOT");
                if negated {
                    self.expect_kw("IN")?;
                }
                self.expect(&Tok::LParen)?;
                let mut values = vec![self.value()?];
                loop {
                    match self.next() {
                        Some(Token {
                            tok: Tok::Comma, ..
                        }) => values.push(self.value()?),
                        Some(Token {
                            tok: Tok::RParen, ..
                        }) => break,
                        Some(t) => return Err(self.unexpected(t)),
                        None => return Err(self.eof()),
                    }
                }
                Ok(Cond::In {
                    field,
                    negated,
                    values,
                })
            }
            _ => Err(self.unexpected(t)),
        }
    }

    fn value(&mut self) -> Result<Literal, SoqlError> {
        let t = self.next().ok_or_else(|| self.eof())?;
        Ok(match t.tok {
            Tok::Str(s) => Literal::Str(s),
            Tok::Num(n, _) => Literal::Number(n),
            Tok::Date(d) => Literal::Date(d),
            Tok::DateTime(d) => Literal::DateTime(d),
            Tok::Ident(ref s) => match s.to_ascii_uppercase().as_str() {
                "NULL" => Literal::Null,
                "TRUE" => Literal::Bool(true),
                "FALSE" => Literal::Bool(false),
                "TODAY" => Literal::Relative(DateLiteral::Today),
                "YESTERDAY" => Literal::Relative(DateLiteral::Yesterday),
                "TOMORROW" => Literal::Relative(DateLiteral::Tomorrow),
                "LAST_N_DAYS" | "NEXT_N_DAYS" => {
                    let last = s.eq_ignore_ascii_case("LAST_N_DAYS");
                    self.expect(&Tok::Colon)?;
                    let n = self.uint()?;
                    let n = u32::try_from(n).map_err(|_| self.unexpected(t.clone()))?;
                    Literal::Relative(if last {
                        DateLiteral::LastNDays(n)
                    } else {
                        DateLiteral::NextNDays(n)
                    })
                }
                _ => return Err(self.unexpected(t)),
            },
            _ => return Err(self.unexpected(t)),
        })
    }
}

fn is_reserved(s: &str) -> bool {
    const RESERVED: &[&str] = &[
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "LIMIT",
        "OFFSET", "ASC", "DESC", "NULLS", "NULL", "TRUE", "FALSE",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

// ---------------------------------------------------------------------------------------
// Printer

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('_' | '%')) => out.push('\\'),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("null"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Number(n) => write!(f, "{n}"),
            Literal::Str(s) => write!(f, "'{}'", escape(s)),
            Literal::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Literal::DateTime(d) if d.timestamp_subsec_millis() == 0 => {
                write!(f, "{}", d.format("%Y-%m-%dT%H:%M:%SZ"))
            }
            Literal::DateTime(d) => write!(f, "{}", d.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
            Literal::Relative(r) => match r {
                DateLiteral::Today => f.write_str("TODAY"),
                DateLiteral::Yesterday => f.write_str("YESTERDAY"),
                DateLiteral::Tomorrow => f.write_str("TOMORROW"),
                DateLiteral::LastNDays(n) => write!(f, "LAST_N_DAYS:{n}"),
                DateLiteral::NextNDays(n) => write!(f, "NEXT_N_DAYS:{n}"),
            },
        }
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let child = |c: &Cond, f: &mut fmt::Formatter<'_>| -> fmt::Result {
            match c {
                Cond::And(_) | Cond::Or(_) => write!(f, "({c})"),
                _ => write!(f, "{c}"),
            }
        };
        match self {
            Cond::And(cs) | Cond::Or(cs) => {
                let sep = if matches!(self, Cond::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    child(c, f)?;
                }
                Ok(())
            }
            Cond::Not(c) => write!(f, "NOT ({c})"),
            Cond::Cmp { field, op, value } => write!(f, "{field} {} {value}", op.as_str()),
            Cond::In {
                field,
                negated,
                values,
            } => {
                write!(f, "{field} {}IN (", if *negated { "NOT " } else { "" })?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str(")")
            }
            Cond::Like { field, pattern } => write!(f, "{field} LIKE '{}'", escape(pattern)),
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SELECT ")?;
        match &self.select {
            Select::Count => f.write_str("COUNT()")?,
            Select::Fields(fs) => f.write_str(&fs.join(", "))?,
        }
        write!(f, " FROM {}", self.from)?;
        if let Some(c) = &self.condition {
            write!(f, " WHERE {c}")?;
        }
        if !self.order_by.is_empty() {
            f.write_str(" ORDER BY ")?;
            for (i, o) in self.order_by.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(&o.field)?;
                if o.descending {
                    f.write_str(" DESC")?;
                }
                match o.nulls_first {
                    Some(true) => f.write_str(" NULLS FIRST")?,
                    Some(false) => f.write_str(" NULLS LAST")?,
                    None => {}
                }
            }
        }
        if let Some(l) = self.limit {
            write!(f, " LIMIT {l}")?;
        }
        if let Some(o) = self.offset {
            write!(f, " OFFSET {o}")?;
        }
        Ok(())
    }
}

/// The message of a `MALFORMED_QUERY` / `INVALID_FIELD` error as Salesforce writes it:
/// the query, a caret under the column, `ERROR at Row:1:Column:N`, then the reason.
pub fn salesforce_message(q: &str, column: usize, reason: &str) -> String {
    let line = q.lines().next().unwrap_or("");
    format!(
        "\n{line}\n{}^\nERROR at Row:1:Column:{column}\n{reason}",
        " ".repeat(column.saturating_sub(1))
    )
}

/// The 1-based column where `name` first appears in `q` as a word, for error messages.
pub fn column_of_word(q: &str, name: &str) -> usize {
    let lower = q.to_ascii_lowercase();
    let needle = name.to_ascii_lowercase();
    let mut from = 0;
    while let Some(p) = lower[from..].find(&needle) {
        let at = from + p;
        let before = lower[..at].chars().last();
        let after = lower[at + needle.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if boundary(before) && boundary(after) {
            return column_of(q, at);
        }
        from = at + needle.len();
    }
    1
}

// ---------------------------------------------------------------------------------------
// Evaluation

/// A field's value, typed for comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    /// No value.
    Null,
    /// Text (compared case-insensitively).
    Text(String),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// Milliseconds since the epoch (date-times).
    Instant(i64),
    /// A date.
    Date(NaiveDate),
}

/// The kind of a field, which decides which literals it may be compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text-like fields (string, email, id, reference, picklist...).
    Text,
    /// Numbers.
    Number,
    /// Booleans.
    Bool,
    /// Date-times.
    DateTime,
    /// Dates.
    Date,
}

/// Why a literal does not fit a field (`INVALID_FIELD`-style message).
pub fn check_literal(field: &str, kind: Kind, lit: &Literal) -> Result<(), String> {
    let ok = matches!(
        (kind, lit),
        (_, Literal::Null)
            | (Kind::Text, Literal::Str(_))
            | (Kind::Number, Literal::Number(_))
            | (Kind::Bool, Literal::Bool(_))
            | (Kind::DateTime, Literal::DateTime(_) | Literal::Relative(_))
            | (Kind::Date, Literal::Date(_) | Literal::Relative(_))
    );
    if ok {
        return Ok(());
    }
    Err(match kind {
        Kind::Text => format!(
            "value of filter criterion for field '{field}' must be of type string and should be enclosed in quotes"
        ),
        Kind::Number => format!(
            "value of filter criterion for field '{field}' must be of type double and should not be enclosed in quotes"
        ),
        Kind::Bool => format!(
            "value of filter criterion for field '{field}' must be of type boolean and should not be enclosed in quotes"
        ),
        Kind::DateTime => format!(
            "value of filter criterion for field '{field}' must be of type dateTime and should not be enclosed in quotes"
        ),
        Kind::Date => format!(
            "value of filter criterion for field '{field}' must be of type date and should not be enclosed in quotes"
        ),
    })
}

/// `[lo, hi)` in milliseconds of a relative date literal, given now (ms).
fn relative_range(r: DateLiteral, now_ms: i64) -> (i64, i64) {
    const DAY: i64 = 86_400_000;
    let today = now_ms.div_euclid(DAY) * DAY;
    match r {
        DateLiteral::Today => (today, today + DAY),
        DateLiteral::Yesterday => (today - DAY, today),
        DateLiteral::Tomorrow => (today + DAY, today + 2 * DAY),
        DateLiteral::LastNDays(n) => (today - i64::from(n) * DAY, today + DAY),
        DateLiteral::NextNDays(n) => (today, today + (i64::from(n) + 1) * DAY),
    }
}

fn date_ms(d: NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce() - 719_163) * 86_400_000
}

fn cmp_typed(a: &Typed, b: &Typed) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Typed::Text(x), Typed::Text(y)) => Some(cmp_text(x, y)),
        (Typed::Number(x), Typed::Number(y)) => x.partial_cmp(y),
        (Typed::Bool(x), Typed::Bool(y)) => Some(x.cmp(y)),
        (Typed::Instant(x), Typed::Instant(y)) => Some(x.cmp(y)),
        (Typed::Date(x), Typed::Date(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Compares two texts case-insensitively (as their lowercase forms), without allocating when
/// both are ASCII (the common case: a query's `IN` list of ids is compared with every record).
fn cmp_text(x: &str, y: &str) -> std::cmp::Ordering {
    if x.is_ascii() && y.is_ascii() {
        x.bytes()
            .map(|b| b.to_ascii_lowercase())
            .cmp(y.bytes().map(|b| b.to_ascii_lowercase()))
    } else {
        x.to_lowercase().cmp(&y.to_lowercase())
    }
}

/// A text in the form [`cmp_text`] compares (lowercase), borrowed when it already is.
pub fn folded(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(s.to_lowercase())
    }
}

/// A field whose value (folded, see [`folded`]) must be one of a set for a record to match,
/// where the condition says so as an index would serve it: `field = 'x'` or
/// `field IN ('x', ...)`, alone or as one term of an AND. A query looks each record's value up
/// once instead of comparing it with every literal (a read-back of 200 external ids against a
/// large table); the whole condition is still evaluated on the records that pass.
pub fn text_probe(cond: &Cond) -> Option<(&str, std::collections::HashSet<String>)> {
    let texts = |values: &[Literal]| -> Option<std::collections::HashSet<String>> {
        values
            .iter()
            .map(|v| match v {
                Literal::Str(s) => Some(folded(s).into_owned()),
                _ => None,
            })
            .collect()
    };
    match cond {
        Cond::And(cs) => cs.iter().find_map(text_probe),
        Cond::Cmp {
            field,
            op: CmpOp::Eq,
            value,
        } => Some((field, texts(std::slice::from_ref(value))?)),
        Cond::In {
            field,
            negated: false,
            values,
        } => Some((field, texts(values)?)),
        _ => None,
    }
}

/// Orders two values of one field (NULL lowest), for ORDER BY.
pub fn order(a: &Typed, b: &Typed) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Typed::Null, Typed::Null) => Ordering::Equal,
        (Typed::Null, _) => Ordering::Less,
        (_, Typed::Null) => Ordering::Greater,
        _ => cmp_typed(a, b).unwrap_or(Ordering::Equal),
    }
}

fn literal_typed(lit: &Literal, kind: Kind) -> Typed {
    match lit {
        Literal::Null | Literal::Relative(_) => Typed::Null,
        Literal::Bool(b) => Typed::Bool(*b),
        Literal::Number(n) => Typed::Number(*n),
        Literal::Str(s) => Typed::Text(s.clone()),
        Literal::Date(d) => Typed::Date(*d),
        Literal::DateTime(d) if kind == Kind::Date => Typed::Date(d.date_naive()),
        Literal::DateTime(d) => Typed::Instant(d.timestamp_millis()),
    }
}

fn like(value: &str, pattern: &str) -> bool {
    // Case-insensitive; `%` any run, `_` one character, `\%` and `\_` literal.
    #[derive(Clone, Copy, PartialEq)]
    enum P {
        Any,
        One,
        Ch(char),
    }
    let mut pat = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '%' => pat.push(P::Any),
            '_' => pat.push(P::One),
            '\\' => {
                if let Some(n) = it.next() {
                    pat.extend(n.to_lowercase().map(P::Ch));
                }
            }
            c => pat.extend(c.to_lowercase().map(P::Ch)),
        }
    }
    let v: Vec<char> = value.chars().flat_map(char::to_lowercase).collect();
    // Classic wildcard matching with backtracking on the last `%`.
    let (mut vi, mut pi) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while vi < v.len() {
        if pi < pat.len() && (pat[pi] == P::One || pat[pi] == P::Ch(v[vi])) {
            vi += 1;
            pi += 1;
        } else if pi < pat.len() && pat[pi] == P::Any {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    while pi < pat.len() && pat[pi] == P::Any {
        pi += 1;
    }
    pi == pat.len()
}

/// Evaluates a condition whose fields are canonical names; `get` returns a field's kind and
/// typed value, `now_ms` anchors relative dates.
pub fn eval(cond: &Cond, get: &impl Fn(&str) -> (Kind, Typed), now_ms: i64) -> bool {
    match cond {
        Cond::And(cs) => cs.iter().all(|c| eval(c, get, now_ms)),
        Cond::Or(cs) => cs.iter().any(|c| eval(c, get, now_ms)),
        Cond::Not(c) => !eval(c, get, now_ms),
        Cond::Cmp { field, op, value } => {
            let (kind, v) = get(field);
            compare(kind, &v, *op, value, now_ms)
        }
        Cond::In {
            field,
            negated,
            values,
        } => {
            let (kind, v) = get(field);
            let hit = values
                .iter()
                .any(|l| compare(kind, &v, CmpOp::Eq, l, now_ms));
            hit != *negated
        }
        Cond::Like { field, pattern } => match get(field).1 {
            Typed::Text(s) => like(&s, pattern),
            _ => false,
        },
    }
}

fn compare(kind: Kind, v: &Typed, op: CmpOp, lit: &Literal, now_ms: i64) -> bool {
    if let Literal::Relative(r) = lit {
        let (lo, hi) = relative_range(*r, now_ms);
        let x = match v {
            Typed::Instant(ms) => *ms,
            Typed::Date(d) => date_ms(*d),
            _ => return op == CmpOp::Ne && *v == Typed::Null,
        };
        return match op {
            CmpOp::Eq => lo <= x && x < hi,
            CmpOp::Ne => !(lo <= x && x < hi),
            CmpOp::Lt => x < lo,
            CmpOp::Le => x < hi,
            CmpOp::Gt => x >= hi,
            CmpOp::Ge => x >= lo,
        };
    }
    // A text against a text literal: compared in place (the literal is not copied).
    if let (Typed::Text(x), Literal::Str(s)) = (v, lit) {
        return holds(op, cmp_text(x, s));
    }
    let l = literal_typed(lit, kind);
    match (v, &l) {
        (Typed::Null, Typed::Null) => return op == CmpOp::Eq,
        (Typed::Null, _) | (_, Typed::Null) => return op == CmpOp::Ne,
        _ => {}
    }
    let Some(ord) = cmp_typed(v, &l) else {
        return false;
    };
    holds(op, ord)
}

/// Whether `op` holds for a value ordered `ord` against the literal.
fn holds(op: CmpOp, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => ord == Equal,
        CmpOp::Ne => ord != Equal,
        CmpOp::Lt => ord == Less,
        CmpOp::Gt => ord == Greater,
        CmpOp::Le => ord != Greater,
        CmpOp::Ge => ord != Less,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_list_or_an_equality_of_texts_alone_or_in_an_and_gives_a_probe_and_nothing_else_does() {
        let probe = |q: &str| {
            let parsed = parse(q).unwrap();
            text_probe(parsed.condition.as_ref().unwrap()).map(|(field, set)| {
                let mut values: Vec<String> = set.into_iter().collect();
                values.sort();
                (field.to_owned(), values)
            })
        };
        let pair = |f: &str, vs: &[&str]| {
            Some((f.to_owned(), vs.iter().map(|v| (*v).to_owned()).collect()))
        };
        assert_eq!(
            probe("SELECT Id FROM Lead WHERE tandem_id__c IN ('A1', 'b2')"),
            pair("tandem_id__c", &["a1", "b2"])
        );
        assert_eq!(
            probe("SELECT Id FROM Lead WHERE IsConverted = false AND Email = 'Ann@X.example'"),
            pair("Email", &["ann@x.example"])
        );
        for q in [
            "SELECT Id FROM Lead WHERE Email = 'a@x.example' OR Email = 'b@x.example'",
            "SELECT Id FROM Lead WHERE Email NOT IN ('a@x.example')",
            "SELECT Id FROM Lead WHERE Email != 'a@x.example'",
            "SELECT Id FROM Lead WHERE NumberOfEmployees IN (1, 2)",
        ] {
            assert_eq!(probe(q), None, "{q}");
        }
    }

    #[test]
    fn a_polling_query_parses_with_an_unquoted_datetime() {
        let q = parse(
            "SELECT Id, Email, SystemModstamp FROM Lead WHERE SystemModstamp > 2024-05-01T10:00:00Z ORDER BY SystemModstamp, Id LIMIT 200",
        )
        .unwrap();
        assert_eq!(q.from, "Lead");
        assert_eq!(q.order_by.len(), 2);
        assert_eq!(q.limit, Some(200));
        match q.condition.unwrap() {
            Cond::Cmp {
                op: CmpOp::Gt,
                value: Literal::DateTime(d),
                ..
            } => assert_eq!(d.to_rfc3339(), "2024-05-01T10:00:00+00:00"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn offsets_in_datetime_literals_are_understood() {
        let q =
            parse("SELECT Id FROM Lead WHERE CreatedDate >= 2024-05-01T12:00:00+02:00").unwrap();
        let Some(Cond::Cmp {
            value: Literal::DateTime(d),
            ..
        }) = q.condition
        else {
            panic!()
        };
        assert_eq!(d.to_rfc3339(), "2024-05-01T10:00:00+00:00");
    }

    #[test]
    fn a_misspelt_keyword_is_reported_with_its_column() {
        let e = parse("SELECT Id FORM Lead").unwrap_err();
        assert_eq!(e.column, 11);
        assert_eq!(e.message, "unexpected token: FORM");
        let e = parse("SELECT Id FROM").unwrap_err();
        assert_eq!(e.message, "unexpected token: <EOF>");
    }

    #[test]
    fn mixing_and_with_or_without_parentheses_is_refused() {
        assert!(parse("SELECT Id FROM Lead WHERE A = 1 AND B = 2 OR C = 3").is_err());
        assert!(parse("SELECT Id FROM Lead WHERE A = 1 AND (B = 2 OR C = 3)").is_ok());
    }

    #[test]
    fn in_not_in_like_and_relative_dates_parse() {
        let q = parse("select id from contact where email in ('a@x.com','b@x.com') and name like 'Ad%' and not lastname = null and CreatedDate = LAST_N_DAYS:7 and Id not in ('003')").unwrap();
        let Some(Cond::And(items)) = q.condition else {
            panic!()
        };
        assert_eq!(items.len(), 5);
    }

    #[test]
    fn string_escapes_are_read_and_printed_back() {
        let q = parse(r"SELECT Id FROM Lead WHERE LastName = 'O\'Brien \\ x'").unwrap();
        let Some(Cond::Cmp {
            value: Literal::Str(s),
            ..
        }) = &q.condition
        else {
            panic!()
        };
        assert_eq!(s, r"O'Brien \ x");
        assert_eq!(parse(&q.to_string()).unwrap(), q);
    }

    #[test]
    fn like_matches_wildcards_case_insensitively() {
        assert!(like("Ada Lovelace", "ada%"));
        assert!(like("Ada", "A_a"));
        assert!(!like("Ada", "A_"));
        assert!(like("50%", "50\\%"));
        assert!(like("abcabc", "%b%c"));
    }

    #[test]
    fn the_salesforce_message_points_at_the_column() {
        let m = salesforce_message("SELECT Id FORM Lead", 11, "unexpected token: FORM");
        assert_eq!(
            m,
            "\nSELECT Id FORM Lead\n          ^\nERROR at Row:1:Column:11\nunexpected token: FORM"
        );
    }
}
