//! Reading source CSV files (docs/data-format.md, "Source files").
//!
//! Records are physical lines: a line that is not one well-formed RFC 4180
//! record with as many fields as the header is quarantined, never fatal. Fields
//! are trimmed (inside quotes too) and an empty field is NULL.

use std::borrow::Cow;

use crate::tables::Table;

/// Why a physical line is not a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// The line is not valid UTF-8.
    NotUtf8,
    /// A quoted field is never closed on its line.
    UnclosedQuote,
    /// Something other than white space or a comma follows a closing quote.
    TextAfterClosingQuote,
    /// A `"` inside a field that does not start with one.
    QuoteInUnquotedField,
    /// The record has another number of fields than the header.
    FieldCount {
        /// Fields in the header.
        expected: usize,
        /// Fields in this record.
        found: usize,
    },
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::NotUtf8 => f.write_str("not valid UTF-8"),
            Malformed::UnclosedQuote => f.write_str("a quoted field is not closed"),
            Malformed::TextAfterClosingQuote => f.write_str("text after a closing quote"),
            Malformed::QuoteInUnquotedField => f.write_str("a quote inside an unquoted field"),
            Malformed::FieldCount { expected, found } => {
                write!(f, "expected {expected} fields, found {found}")
            }
        }
    }
}

/// Splits one physical line (without its line break) into trimmed fields;
/// `None` is an empty field (NULL).
pub fn parse_record(line: &str) -> Result<Vec<Option<Cow<'_, str>>>, Malformed> {
    let bytes = line.as_bytes();
    let mut fields = Vec::with_capacity(8);
    let mut start = 0;
    loop {
        let mut i = start;
        while i < bytes.len() && (bytes[i] == b' ' || bytes[i] == b'\t') {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'"' {
            let (value, after) = quoted_field(line, i + 1)?;
            let mut j = after;
            while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
                j += 1;
            }
            fields.push(non_empty(value));
            if j == bytes.len() {
                return Ok(fields);
            }
            if bytes[j] != b',' {
                return Err(Malformed::TextAfterClosingQuote);
            }
            start = j + 1;
        } else {
            let end = memchr::memchr(b',', &bytes[start..]).map_or(bytes.len(), |p| start + p);
            if memchr::memchr(b'"', &bytes[start..end]).is_some() {
                return Err(Malformed::QuoteInUnquotedField);
            }
            fields.push(non_empty(Cow::Borrowed(&line[start..end])));
            if end == bytes.len() {
                return Ok(fields);
            }
            start = end + 1;
        }
    }
}

/// Reads a quoted field whose content starts at `from`; returns the unescaped
/// content and the index just after the closing quote.
fn quoted_field(line: &str, from: usize) -> Result<(Cow<'_, str>, usize), Malformed> {
    let bytes = line.as_bytes();
    let mut owned: Option<String> = None;
    let mut segment_start = from;
    let mut i = from;
    loop {
        let quote = memchr::memchr(b'"', &bytes[i..])
            .map(|p| i + p)
            .ok_or(Malformed::UnclosedQuote)?;
        if bytes.get(quote + 1) == Some(&b'"') {
            let buffer = owned.get_or_insert_with(String::new);
            buffer.push_str(&line[segment_start..=quote]);
            i = quote + 2;
            segment_start = i;
        } else {
            let value = match owned {
                Some(mut buffer) => {
                    buffer.push_str(&line[segment_start..quote]);
                    Cow::Owned(buffer)
                }
                None => Cow::Borrowed(&line[from..quote]),
            };
            return Ok((value, quote + 1));
        }
    }
}

fn non_empty(value: Cow<'_, str>) -> Option<Cow<'_, str>> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        None
    } else if trimmed.len() == value.len() {
        Some(value)
    } else {
        Some(Cow::Owned(trimmed.to_owned()))
    }
}

/// A header that names every contract column of a table.
#[derive(Clone, Debug)]
pub struct Header {
    /// For each contract column (in contract order), its position in a record.
    positions: Vec<usize>,
    /// The number of fields every record must have.
    width: usize,
}

/// A header line that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The header line itself is not a CSV record.
    #[error("the header is not a CSV record: {0}")]
    Malformed(Malformed),
    /// A contract column is absent.
    #[error("the header has no column {column} (found: {found})")]
    MissingColumn {
        /// The missing contract column.
        column: &'static str,
        /// The header as read.
        found: String,
    },
    /// A contract column appears twice.
    #[error("the header names column {0} twice")]
    DuplicateColumn(&'static str),
}

impl Header {
    /// Finds the table's columns in a header line by name, case-insensitively,
    /// after trimming; extra columns are allowed and ignored.
    pub fn parse(line: &str, table: Table) -> Result<Header, HeaderError> {
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        let names: Vec<String> = parse_record(line)
            .map_err(HeaderError::Malformed)?
            .into_iter()
            .map(|f| f.map(|n| n.to_lowercase()).unwrap_or_default())
            .collect();
        let mut positions = Vec::with_capacity(table.columns().len());
        for column in table.columns() {
            let wanted = column.to_lowercase();
            let mut matches = names.iter().enumerate().filter(|(_, n)| **n == wanted);
            let position =
                matches
                    .next()
                    .map(|(i, _)| i)
                    .ok_or_else(|| HeaderError::MissingColumn {
                        column,
                        found: line.to_owned(),
                    })?;
            if matches.next().is_some() {
                return Err(HeaderError::DuplicateColumn(column));
            }
            positions.push(position);
        }
        Ok(Header {
            positions,
            width: names.len(),
        })
    }

    /// The contract columns of a record, in contract order.
    pub fn select<'a, 'r>(
        &'a self,
        record: &'r [Option<Cow<'r, str>>],
    ) -> impl Iterator<Item = Option<&'r str>> + 'a
    where
        'r: 'a,
    {
        self.positions.iter().map(move |&p| record[p].as_deref())
    }

    /// Checks a record's field count against the header.
    pub fn check_width(&self, found: usize) -> Result<(), Malformed> {
        if found == self.width {
            Ok(())
        } else {
            Err(Malformed::FieldCount {
                expected: self.width,
                found,
            })
        }
    }
}

/// Whether a physical line is blank (skipped without using up a record number).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

/// Cuts a byte stream into physical lines (`\n` or `\r\n`), whatever the chunk
/// boundaries; the last line may lack its line break.
#[derive(Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds a chunk and calls `on_line` for every line it completes.
    pub fn push<E>(
        &mut self,
        chunk: &[u8],
        mut on_line: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(last_break) = memchr::memrchr(b'\n', chunk) else {
            self.pending.extend_from_slice(chunk);
            return Ok(());
        };
        let (complete, rest) = chunk.split_at(last_break + 1);
        let mut lines = complete[..complete.len() - 1].split(|b| *b == b'\n');
        if !self.pending.is_empty() {
            let first = lines.next().unwrap_or_default();
            let mut joined = std::mem::take(&mut self.pending);
            joined.extend_from_slice(first);
            on_line(strip_cr(&joined))?;
        }
        for line in lines {
            on_line(strip_cr(line))?;
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// Ends the stream: the unterminated last line, if any.
    pub fn finish<E>(&mut self, mut on_line: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let last = std::mem::take(&mut self.pending);
        on_line(strip_cr(&last))
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str) -> Result<Vec<Option<String>>, Malformed> {
        parse_record(line).map(|f| f.into_iter().map(|v| v.map(Cow::into_owned)).collect())
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn plain_and_quoted_fields() {
        assert_eq!(fields("a,b,c"), Ok(vec![s("a"), s("b"), s("c")]));
        assert_eq!(fields(r#""a,b",c"#), Ok(vec![s("a,b"), s("c")]));
        assert_eq!(
            fields(r#""say ""hi""",x"#),
            Ok(vec![s(r#"say "hi""#), s("x")])
        );
        assert_eq!(fields(r#""""#), Ok(vec![None]));
        assert_eq!(fields(r#""a""""#), Ok(vec![s(r#"a""#)]));
    }

    #[test]
    fn trims_inside_and_outside_quotes_and_empty_is_null() {
        assert_eq!(fields(r#" " Sweden " , 7 "#), Ok(vec![s("Sweden"), s("7")]));
        assert_eq!(fields("a,,  ,b"), Ok(vec![s("a"), None, None, s("b")]));
        assert_eq!(fields("a,"), Ok(vec![s("a"), None]));
        assert_eq!(fields(""), Ok(vec![None]));
    }

    #[test]
    fn broken_quoting_is_malformed() {
        assert_eq!(
            fields(r#""abc"def,1"#),
            Err(Malformed::TextAfterClosingQuote)
        );
        assert_eq!(fields(r#""abc,1"#), Err(Malformed::UnclosedQuote));
        assert_eq!(fields(r#"ab"c,1"#), Err(Malformed::QuoteInUnquotedField));
    }

    #[test]
    fn header_by_name_case_insensitive_any_order_extra_columns() {
        let h = Header::parse(
            " price ,QUANTITY,Extra,customerno,productno,DATE,TransactionNo",
            Table::Transactions,
        )
        .unwrap();
        let record = parse_record("3.5,2,x,C1,P1,1/5/2023,T1").unwrap();
        h.check_width(record.len()).unwrap();
        let values: Vec<_> = h.select(&record).collect();
        assert_eq!(
            values,
            vec![
                Some("T1"),
                Some("1/5/2023"),
                Some("P1"),
                Some("C1"),
                Some("2"),
                Some("3.5")
            ]
        );
        assert_eq!(
            h.check_width(6),
            Err(Malformed::FieldCount {
                expected: 7,
                found: 6
            })
        );
    }

    #[test]
    fn header_with_bom_and_errors() {
        assert!(Header::parse("\u{feff}CountryID,CountryName", Table::Countries).is_ok());
        assert!(matches!(
            Header::parse("CountryID,Name", Table::Countries),
            Err(HeaderError::MissingColumn {
                column: "CountryName",
                ..
            })
        ));
        assert!(matches!(
            Header::parse("CountryID,CountryName,countryid", Table::Countries),
            Err(HeaderError::DuplicateColumn("CountryID"))
        ));
    }

    #[test]
    fn splits_lines_across_chunks_with_and_without_final_newline() {
        let collect = |chunks: &[&[u8]]| {
            let mut out: Vec<String> = Vec::new();
            let mut splitter = LineSplitter::default();
            for chunk in chunks {
                splitter
                    .push::<()>(chunk, |l| {
                        out.push(String::from_utf8_lossy(l).into_owned());
                        Ok(())
                    })
                    .unwrap();
            }
            splitter
                .finish::<()>(|l| {
                    out.push(String::from_utf8_lossy(l).into_owned());
                    Ok(())
                })
                .unwrap();
            out
        };
        assert_eq!(
            collect(&[b"a,b\r\nc,", b"d\n", b"\ne"]),
            vec!["a,b", "c,d", "", "e"]
        );
        assert_eq!(collect(&[b"a\n", b"b\n"]), vec!["a", "b"]);
        assert_eq!(collect(&[b"a", b"b", b"c\nd"]), vec!["abc", "d"]);
        assert!(is_blank(b"  \t"));
        assert!(!is_blank(b" ,"));
    }
}
