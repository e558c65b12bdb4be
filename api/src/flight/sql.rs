//! What SQL a Flight SQL client may run: exactly one read-only `SELECT` over the
//! gold tables, checked on the parsed statement (the parser datafusion uses), never
//! on the text. The statement that runs is the canonical text of the checked tree,
//! with every gold table qualified by the configured schema, so what was checked is
//! what PostgreSQL executes.
//!
//! The query also runs in a READ ONLY transaction, so this check is not the only
//! line of defence: it keeps queries to the published datamarts (and away from the
//! catalogs, other schemas and functions that read files or run SQL strings).

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    ArrayElemTypeDef, BinaryOperator, DataType, Expr, Ident, ObjectName, ObjectNamePart, Query,
    SetExpr, Statement, TableFactor, Visit, Visitor, visit_relations_mut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::flight::catalog::GoldTable;

/// Why a statement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// The text does not parse.
    #[error("the SQL does not parse: {0}")]
    Parse(String),
    /// Not exactly one statement.
    #[error("send exactly one statement (got {0})")]
    StatementCount(usize),
    /// Not a query, or a query that writes or locks.
    #[error("only a read-only SELECT is allowed: {0}")]
    NotReadOnly(String),
    /// A relation outside the gold tables.
    #[error(
        "table `{0}` is not available: queries may read only gold_sales_country_year, \
         gold_top_products, gold_monthly_sales, gold_customer_lifetime_value and (admins) gold_runs"
    )]
    UnknownTable(String),
    /// A table-producing construct other than a table, a subquery or a join.
    #[error("`{0}` is not allowed in FROM: read the gold tables, subqueries and joins of them")]
    FromConstruct(String),
    /// A function outside the allowed list (aggregates, window, date/time,
    /// string, maths and conditional functions).
    #[error(
        "function `{0}` is not allowed in Flight SQL queries: only aggregate, window, \
         date/time, string, maths and conditional functions are (see docs/flight-sql.md)"
    )]
    Function(String),
    /// A cast to a type outside PostgreSQL's built-in scalar types.
    #[error("casts to `{0}` are not allowed in Flight SQL queries: cast to built-in types")]
    Type(String),
    /// An operator spelled `OPERATOR(schema.op)`.
    #[error("`{0}` is not allowed in Flight SQL queries: use the plain operator")]
    Operator(String),
    /// `?` and `$n` placeholders mixed.
    #[error("use either `?` or `$1, $2, ...` placeholders, not both")]
    MixedPlaceholders,
}

/// A statement that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedQuery {
    /// The canonical SQL to run: `?` placeholders numbered `$1, $2, ...`, gold
    /// tables schema-qualified.
    pub sql: String,
    /// The gold tables it reads.
    pub tables: BTreeSet<GoldTable>,
}

/// The functions a query may call: PostgreSQL built-ins that compute over the
/// values of the rows and nothing else. Everything not listed is refused, because
/// PostgreSQL has hundreds of functions (and extensions add more) that read files,
/// settings or other relations, run SQL strings, sleep or touch sequences, and a
/// list of the dangerous ones is never complete.
///
/// Left out on purpose: set-returning functions such as `generate_series` and
/// `unnest` (they multiply rows out of nothing, a cheap way to exhaust the server
/// within the timeout, and gold tables need no row generator), `format` and the
/// `to_xml`/`xpath`/`json_populate` families (they take SQL text or type names),
/// and the functions describing the session or the server (`current_user`,
/// `version`, `inet_server_addr`).
const ALLOWED_FUNCTIONS: &[&str] = &[
    // Aggregates.
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "bool_and",
    "bool_or",
    "every",
    "string_agg",
    "array_agg",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_slope",
    "regr_intercept",
    "regr_count",
    "regr_r2",
    "regr_avgx",
    "regr_avgy",
    "regr_sxx",
    "regr_syy",
    "regr_sxy",
    // Window functions.
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // Date and time.
    "date_trunc",
    "date_part",
    "date_bin",
    "extract",
    "age",
    "make_date",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "make_interval",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "isfinite",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_number",
    "now",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "clock_timestamp",
    // Strings.
    "upper",
    "lower",
    "initcap",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "bit_length",
    "substring",
    "substr",
    "position",
    "strpos",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "lpad",
    "rpad",
    "concat",
    "concat_ws",
    "replace",
    "translate",
    "split_part",
    "left",
    "right",
    "reverse",
    "starts_with",
    "regexp_replace",
    "regexp_match",
    "regexp_like",
    "regexp_count",
    "regexp_substr",
    "ascii",
    "chr",
    "md5",
    "to_hex",
    // Maths.
    "abs",
    "ceil",
    "ceiling",
    "floor",
    "round",
    "trunc",
    "sign",
    "sqrt",
    "cbrt",
    "power",
    "pow",
    "exp",
    "ln",
    "log",
    "log10",
    "mod",
    "div",
    "pi",
    "degrees",
    "radians",
    "width_bucket",
    "scale",
    // Conditional expressions and arrays of the row's own values.
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "num_nulls",
    "num_nonnulls",
    "array_length",
    "cardinality",
    // `ARRAY(SELECT ...)`, which the parser reads as a call of `array`; the
    // subquery is checked like any other.
    "array",
];

fn function_allowed(name: &str) -> bool {
    ALLOWED_FUNCTIONS.contains(&name)
}

/// Types a cast may name. Built-in scalar types are parsed into their own
/// variants; a name the parser does not know (`DataType::Custom`) is allowed only
/// for these PostgreSQL spellings, because a cast to another type runs that type's
/// input function (an extension's, or a `reg*` catalog lookup).
const ALLOWED_CUSTOM_TYPES: &[&str] = &[
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "bool",
    "timestamptz",
    "timetz",
    "bpchar",
];

fn check_type(data_type: &DataType) -> Result<(), SqlError> {
    let refused = match data_type {
        DataType::Custom(name, _) => {
            let last = idents(name)
                .filter(|parts| parts.len() == 1)
                .and_then(|parts| parts.last().map(|i| folded(i)));
            !last.is_some_and(|n| ALLOWED_CUSTOM_TYPES.contains(&n.as_str()))
        }
        DataType::Regclass => true,
        DataType::Array(ArrayElemTypeDef::AngleBracket(t))
        | DataType::Array(ArrayElemTypeDef::SquareBracket(t, _))
        | DataType::Array(ArrayElemTypeDef::Parenthesis(t)) => {
            return check_type(t);
        }
        _ => false,
    };
    if refused {
        Err(SqlError::Type(data_type.to_string()))
    } else {
        Ok(())
    }
}

/// An identifier as PostgreSQL folds it: unquoted names are lower-cased.
fn folded(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

fn idents(name: &ObjectName) -> Option<Vec<&Ident>> {
    name.0.iter().map(ObjectNamePart::as_ident).collect()
}

/// One `WITH` list in scope: its names, the address of each CTE's query, and how
/// many of them the part being visited may see (a non-recursive CTE sees only the
/// CTEs before it, as in PostgreSQL; the main query sees all).
struct CteScope {
    names: Vec<String>,
    queries: Vec<*const Query>,
    visible: usize,
}

struct Checker<'a> {
    schema: &'a str,
    scopes: Vec<CteScope>,
    tables: BTreeSet<GoldTable>,
    /// Addresses of the relation names that are gold tables (to qualify them).
    gold_relations: Vec<*const ObjectName>,
}

impl Checker<'_> {
    fn cte_visible(&self, name: &str) -> bool {
        self.scopes
            .iter()
            .any(|s| s.names[..s.visible].iter().any(|n| n == name))
    }

    fn check_set_expr(&self, body: &SetExpr) -> Result<(), SqlError> {
        match body {
            SetExpr::Select(select) => {
                if select.into.is_some() {
                    return Err(SqlError::NotReadOnly(
                        "SELECT ... INTO writes a table".into(),
                    ));
                }
                Ok(())
            }
            SetExpr::Query(_) | SetExpr::Values(_) => Ok(()),
            SetExpr::SetOperation { left, right, .. } => {
                self.check_set_expr(left)?;
                self.check_set_expr(right)
            }
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                Err(SqlError::NotReadOnly("the statement writes".into()))
            }
            SetExpr::Table(_) => Err(SqlError::NotReadOnly(
                "write `SELECT * FROM t` instead of `TABLE t`".into(),
            )),
        }
    }
}

impl Visitor for Checker<'_> {
    type Break = SqlError;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<SqlError> {
        if let Err(e) = self.check_set_expr(&query.body) {
            return ControlFlow::Break(e);
        }
        if !query.locks.is_empty() {
            return ControlFlow::Break(SqlError::NotReadOnly(
                "locking clauses (FOR UPDATE/SHARE) are not allowed".into(),
            ));
        }
        // A CTE's own query: it may see the CTEs listed before it.
        for scope in &mut self.scopes {
            if let Some(i) = scope.queries.iter().position(|q| std::ptr::eq(*q, query)) {
                scope.visible = i;
            }
        }
        if let Some(with) = &query.with {
            if with.recursive {
                return ControlFlow::Break(SqlError::NotReadOnly(
                    "WITH RECURSIVE is not allowed".into(),
                ));
            }
            self.scopes.push(CteScope {
                names: with
                    .cte_tables
                    .iter()
                    .map(|c| folded(&c.alias.name))
                    .collect(),
                queries: with
                    .cte_tables
                    .iter()
                    .map(|c| &*c.query as *const Query)
                    .collect(),
                visible: 0,
            });
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<SqlError> {
        if query.with.is_some() {
            self.scopes.pop();
        }
        // After a CTE's query, it and those before it are visible (to the later
        // CTEs and, after the last one, to the main query).
        for scope in &mut self.scopes {
            if let Some(i) = scope.queries.iter().position(|q| std::ptr::eq(*q, query)) {
                scope.visible = i + 1;
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<SqlError> {
        match factor {
            TableFactor::Table { args: None, .. }
            | TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            TableFactor::Table { name, .. } => {
                ControlFlow::Break(SqlError::FromConstruct(format!("{name}(...)")))
            }
            other => {
                let text = other.to_string();
                let head: String = text.chars().take(40).collect();
                ControlFlow::Break(SqlError::FromConstruct(head))
            }
        }
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<SqlError> {
        let unknown = || SqlError::UnknownTable(relation.to_string());
        let Some(parts) = idents(relation) else {
            return ControlFlow::Break(unknown());
        };
        let table = match parts.as_slice() {
            [table] => {
                let name = folded(table);
                if self.cte_visible(&name) {
                    return ControlFlow::Continue(());
                }
                name
            }
            [schema, table] if folded(schema) == self.schema => folded(table),
            _ => return ControlFlow::Break(unknown()),
        };
        match GoldTable::from_name(&table) {
            Some(t) => {
                self.tables.insert(t);
                self.gold_relations.push(relation as *const ObjectName);
                ControlFlow::Continue(())
            }
            None => ControlFlow::Break(unknown()),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<SqlError> {
        match expr {
            Expr::Function(f) => {
                let Some(parts) = idents(&f.name) else {
                    return ControlFlow::Break(SqlError::Function(f.name.to_string()));
                };
                let qualified_elsewhere =
                    parts.len() > 2 || (parts.len() == 2 && folded(parts[0]) != "pg_catalog");
                // Quoted names keep their case, as in PostgreSQL: `"SUM"` is not
                // `sum`, and is refused like any other unknown function.
                let last = parts.last().map(|i| folded(i)).unwrap_or_default();
                if qualified_elsewhere || !function_allowed(&last) {
                    return ControlFlow::Break(SqlError::Function(f.name.to_string()));
                }
            }
            Expr::Cast { data_type, .. } => {
                if let Err(e) = check_type(data_type) {
                    return ControlFlow::Break(e);
                }
            }
            Expr::TypedString(t) => {
                if let Err(e) = check_type(&t.data_type) {
                    return ControlFlow::Break(e);
                }
            }
            // `OPERATOR(schema.op)` names an operator, i.e. a function, in any
            // schema; the plain built-in operators need no such spelling.
            Expr::BinaryOp {
                op: BinaryOperator::PGCustomBinaryOperator(parts),
                ..
            } => {
                return ControlFlow::Break(SqlError::Operator(format!(
                    "OPERATOR({})",
                    parts.join(".")
                )));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Parses `sql` and accepts it only if it is one read-only SELECT over the gold
/// tables of `schema`; returns the canonical statement to run.
pub fn check(sql: &str, schema: &str) -> Result<CheckedQuery, SqlError> {
    let dialect = PostgreSqlDialect {};
    let mut tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::Parse(e.to_string()))?;
    // `?` placeholders (ADBC, JDBC) become PostgreSQL's `$1, $2, ...` (PostgreSQL
    // would read `?` as its JSON operator).
    let mut question_marks = 0usize;
    let mut numbered = false;
    for t in &mut tokens {
        match &t.token {
            Token::Question => {
                question_marks += 1;
                t.token = Token::Placeholder(format!("${question_marks}"));
            }
            Token::Placeholder(p) if p.starts_with('$') => numbered = true,
            _ => {}
        }
    }
    if question_marks > 0 && numbered {
        return Err(SqlError::MixedPlaceholders);
    }
    let mut statements = Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| SqlError::Parse(e.to_string()))?;
    if statements.len() != 1 {
        return Err(SqlError::StatementCount(statements.len()));
    }
    let mut statement = statements.remove(0);
    if !matches!(statement, Statement::Query(_)) {
        let text = statement.to_string();
        let verb = text.split_whitespace().next().unwrap_or("").to_uppercase();
        return Err(SqlError::NotReadOnly(format!("got a {verb} statement")));
    }
    let mut checker = Checker {
        schema,
        scopes: Vec::new(),
        tables: BTreeSet::new(),
        gold_relations: Vec::new(),
    };
    if let ControlFlow::Break(e) = statement.visit(&mut checker) {
        return Err(e);
    }
    let Checker {
        tables,
        gold_relations,
        ..
    } = checker;

    // Qualify the gold tables (by the addresses recorded above: the tree has not
    // moved since), so neither search_path nor a same-named CTE elsewhere matters.
    let schema_ident = Ident::with_quote('"', schema);
    let _ = visit_relations_mut(&mut statement, |relation| {
        if gold_relations.contains(&(relation as *const ObjectName))
            && let Some(table) = relation.0.last().and_then(ObjectNamePart::as_ident)
        {
            let table = Ident::with_quote('"', folded(table));
            *relation = ObjectName::from(vec![schema_ident.clone(), table]);
        }
        ControlFlow::<()>::Continue(())
    });

    Ok(CheckedQuery {
        sql: statement.to_string(),
        tables,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> CheckedQuery {
        check(sql, "public").unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn err(sql: &str) -> SqlError {
        match check(sql, "public") {
            Ok(q) => panic!("{sql} was accepted as {}", q.sql),
            Err(e) => e,
        }
    }

    #[test]
    fn accepts_selects_over_gold_tables_and_qualifies_them() {
        let q = ok("select * from gold_customer_lifetime_value where country = 'Sweden'");
        assert_eq!(
            q.sql,
            "SELECT * FROM \"public\".\"gold_customer_lifetime_value\" WHERE country = 'Sweden'"
        );
        assert_eq!(
            q.tables.iter().copied().collect::<Vec<_>>(),
            vec![GoldTable::CustomerLifetimeValue]
        );
        let q = ok(
            "SELECT m.month, s.total_sales FROM public.gold_monthly_sales m \
                    JOIN (SELECT year, sum(total_sales) AS total_sales FROM GOLD_SALES_COUNTRY_YEAR GROUP BY year) s \
                    ON extract(year FROM m.month) = s.year ORDER BY 1 LIMIT 5",
        );
        assert_eq!(q.tables.len(), 2);
        let q = ok(
            "WITH a AS (SELECT * FROM gold_top_products), b AS (SELECT * FROM a) SELECT count(*) FROM b",
        );
        assert!(
            q.sql.contains("\"public\".\"gold_top_products\""),
            "{}",
            q.sql
        );
        assert!(
            ok("SELECT * FROM gold_runs")
                .tables
                .contains(&GoldTable::Runs)
        );
    }

    #[test]
    fn numbers_question_mark_placeholders() {
        let q = ok("SELECT * FROM gold_top_products WHERE scope = ? AND rank <= ?");
        assert!(
            q.sql.ends_with("WHERE scope = $1 AND rank <= $2"),
            "{}",
            q.sql
        );
        let q = ok("SELECT * FROM gold_top_products WHERE scope = $1");
        assert!(q.sql.ends_with("WHERE scope = $1"), "{}", q.sql);
        assert_eq!(
            err("SELECT * FROM gold_top_products WHERE scope = ? AND rank = $2"),
            SqlError::MixedPlaceholders
        );
    }

    #[test]
    fn refuses_writes_and_other_statements() {
        for sql in [
            "DELETE FROM gold_runs",
            "UPDATE gold_top_products SET rank = 1",
            "INSERT INTO gold_runs VALUES (1)",
            "DROP TABLE gold_runs",
            "COPY gold_runs TO '/tmp/x'",
            "SET statement_timeout = 0",
            "EXPLAIN SELECT 1",
            "SELECT * INTO t FROM gold_top_products",
            "SELECT * FROM gold_top_products FOR UPDATE",
            "TABLE gold_top_products",
            "WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r",
        ] {
            assert!(
                matches!(
                    err(sql),
                    SqlError::NotReadOnly(_) | SqlError::Parse(_) | SqlError::UnknownTable(_)
                ),
                "{sql}"
            );
        }
        assert_eq!(err("SELECT 1; SELECT 2"), SqlError::StatementCount(2));
        assert!(matches!(err("SELEC 1"), SqlError::Parse(_)));
    }

    #[test]
    fn refuses_other_relations_and_escapes() {
        for sql in [
            "SELECT * FROM pg_authid",
            "SELECT * FROM pg_catalog.pg_user",
            "SELECT * FROM other.gold_runs",
            "SELECT * FROM db.public.gold_runs",
            "SELECT * FROM silver_customers",
            "SELECT * FROM gold_top_products WHERE product_no IN (SELECT usename FROM pg_user)",
            // A CTE name is visible only after its definition (non-recursive WITH).
            "WITH a AS (SELECT * FROM pg_authid), pg_authid AS (SELECT 1) SELECT * FROM a",
            // ...and only inside its own query.
            "SELECT * FROM (WITH pg_authid AS (SELECT 1) SELECT 1) x, pg_authid",
        ] {
            assert!(matches!(err(sql), SqlError::UnknownTable(_)), "{sql}");
        }
        for sql in [
            "SELECT pg_sleep(10)",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT query_to_xml('select * from pg_authid', true, true, '')",
            "SELECT current_setting('data_directory')",
            "SELECT public.f(1)",
            "SELECT * FROM gold_runs WHERE datamart = PG_CATALOG.PG_READ_FILE('x')",
        ] {
            assert!(matches!(err(sql), SqlError::Function(_)), "{sql}");
        }
        for sql in [
            "SELECT * FROM generate_series(1, 3)",
            "SELECT * FROM unnest(ARRAY[1, 2])",
            "SELECT * FROM pg_ls_dir('.')",
            "SELECT * FROM gold_runs, LATERAL pg_ls_dir('.') AS f",
            "SELECT * FROM gold_runs CROSS JOIN LATERAL generate_series(1, 3)",
        ] {
            assert!(matches!(err(sql), SqlError::FromConstruct(_)), "{sql}");
        }
    }

    #[test]
    fn allows_only_listed_functions_anywhere_in_the_tree() {
        let refused = [
            (
                "SELECT pg_read_binary_file('/etc/passwd')",
                "pg_read_binary_file",
            ),
            ("SELECT pg_stat_file('.')", "pg_stat_file"),
            ("SELECT set_config('search_path', 'x', true)", "set_config"),
            ("SELECT lo_import('/etc/passwd')", "lo_import"),
            ("SELECT lo_get(1)", "lo_get"),
            (
                "SELECT table_to_xml('pg_authid', true, true, '')",
                "table_to_xml",
            ),
            (
                "SELECT xpath('/a', query_to_xml('select 1', true, true, ''))",
                "xpath",
            ),
            ("SELECT pg_sleep_for('5 seconds')", "pg_sleep_for"),
            (
                "SELECT dblink_exec('host=x', 'drop table t')",
                "dblink_exec",
            ),
            ("SELECT generate_series(1, 1000000000)", "generate_series"),
            ("SELECT \"PG_READ_FILE\"('x')", "\"PG_READ_FILE\""),
            (
                "SELECT \"SUM\"(total_sales) FROM gold_monthly_sales",
                "\"SUM\"",
            ),
            ("SELECT version()", "version"),
            ("SELECT current_user", "current_user"),
            ("SELECT format('%s', 1)", "format"),
            // Nested: in a CTE, a subquery, a window, an ORDER BY, a lateral subquery.
            (
                "WITH a AS (SELECT pg_read_file('x') AS f) SELECT * FROM a",
                "pg_read_file",
            ),
            (
                "SELECT * FROM gold_monthly_sales WHERE total_sales > (SELECT max(length(pg_read_file('x'))))",
                "pg_read_file",
            ),
            (
                "SELECT sum(total_sales) OVER (ORDER BY pg_backend_pid()) FROM gold_monthly_sales",
                "pg_backend_pid",
            ),
            (
                "SELECT * FROM gold_monthly_sales ORDER BY random_thing(month)",
                "random_thing",
            ),
            (
                "SELECT * FROM gold_runs r, LATERAL (SELECT current_setting('data_directory')) s",
                "current_setting",
            ),
            ("SELECT ARRAY(SELECT pg_ls_dir('.'))", "pg_ls_dir"),
        ];
        for (sql, name) in refused {
            match err(sql) {
                SqlError::Function(f) => assert_eq!(f, name, "{sql}"),
                other => panic!("{sql}: {other:?}"),
            }
            assert!(err(sql).to_string().contains(name), "{sql}");
        }
        for sql in [
            "SELECT 'pg_authid'::regclass",
            "SELECT '1'::regproc",
            "SELECT '1'::lo",
            "SELECT CAST('x' AS pg_catalog.xml)",
            "SELECT '{}'::regclass[]",
        ] {
            assert!(
                matches!(err(sql), SqlError::Type(_)),
                "{sql}: {:?}",
                check(sql, "public")
            );
        }
        assert!(matches!(
            err("SELECT 1 OPERATOR(public.+) 2"),
            SqlError::Operator(_)
        ));

        for sql in [
            "SELECT sum(total_sales), count(*), avg(total_sales), min(month), max(month) FROM gold_monthly_sales",
            "SELECT date_trunc('year', month), extract(year FROM month), round(total_sales, 1) FROM gold_monthly_sales",
            "SELECT upper(country), lower(country), substring(country FROM 1 FOR 2), trim(country) FROM gold_sales_country_year",
            "SELECT row_number() OVER (PARTITION BY scope ORDER BY rank), lag(rank) OVER w FROM gold_top_products WINDOW w AS (ORDER BY rank)",
            "SELECT CAST(total_sales AS numeric(12, 2)), total_sales::float8, year::text, year::int4 FROM gold_sales_country_year",
            "SELECT coalesce(country, 'x'), nullif(year, 0), greatest(1, 2), least(1, 2), CASE WHEN year > 2000 THEN 1 ELSE 0 END FROM gold_sales_country_year",
            "SELECT pg_catalog.sum(total_sales) FROM gold_monthly_sales",
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total_sales) FROM gold_monthly_sales",
            "SELECT count(*) FILTER (WHERE year > 2000) FROM gold_sales_country_year",
            "SELECT now(), current_date, current_timestamp, DATE '2024-01-01', TIMESTAMP '2024-01-01 00:00:00', INTERVAL '1 day'",
            "SELECT ceil(1.5), floor(1.5), abs(-1), mod(5, 2), power(2, 3), to_char(month, 'YYYY-MM') FROM gold_monthly_sales",
        ] {
            ok(sql);
        }
    }
}
