//! PostgreSQL identifiers in SQL text.

/// Quotes a PostgreSQL identifier: `a"b` becomes `"a""b"`, so any name is
/// taken as a name, never as SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`, both quoted.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_doubles_quotes() {
        assert_eq!(quote_ident("gold"), "\"gold\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            quote_ident("x\"; DROP TABLE t; --"),
            "\"x\"\"; DROP TABLE t; --\""
        );
        assert_eq!(qualified("public", "gold_runs"), "\"public\".\"gold_runs\"");
    }
}
