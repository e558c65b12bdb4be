-- The gold datamarts and their run log, exactly as docs/data-format.md ("Gold tables") defines them.
-- Applied idempotently by the job-runner before every gold load.

CREATE TABLE IF NOT EXISTS gold_sales_country_year (
    year integer NOT NULL,
    country text NOT NULL,
    total_sales numeric(18,2) NOT NULL,
    total_quantity bigint NOT NULL,
    transactions bigint NOT NULL,
    customers bigint NOT NULL,
    PRIMARY KEY (year, country)
);

CREATE TABLE IF NOT EXISTS gold_top_products (
    scope text NOT NULL,
    rank integer NOT NULL,
    product_no text NOT NULL,
    product_name text NOT NULL,
    total_sales numeric(18,2) NOT NULL,
    total_quantity bigint NOT NULL,
    transactions bigint NOT NULL,
    PRIMARY KEY (scope, rank)
);

CREATE TABLE IF NOT EXISTS gold_monthly_sales (
    month date NOT NULL,
    total_sales numeric(18,2) NOT NULL,
    total_quantity bigint NOT NULL,
    transactions bigint NOT NULL,
    customers bigint NOT NULL,
    avg_transaction_value numeric(18,2) NOT NULL,
    mom_growth_pct numeric(12,2),
    PRIMARY KEY (month)
);

CREATE TABLE IF NOT EXISTS gold_customer_lifetime_value (
    customer_no text NOT NULL,
    first_name text,
    last_name text,
    country text NOT NULL,
    first_purchase date NOT NULL,
    last_purchase date NOT NULL,
    transactions bigint NOT NULL,
    total_quantity bigint NOT NULL,
    lifetime_value numeric(18,2) NOT NULL,
    avg_transaction_value numeric(18,2) NOT NULL,
    value_rank integer NOT NULL,
    value_quartile integer NOT NULL,
    PRIMARY KEY (customer_no)
);

-- One row per gold load. A successful load's row is inserted in the same
-- transaction that publishes the table; a failed load appends a 'failed' row.
CREATE TABLE IF NOT EXISTS gold_runs (
    datamart text NOT NULL,
    run_id text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    rows_written bigint NOT NULL,
    status text NOT NULL CHECK (status IN ('succeeded', 'failed')),
    silver_snapshot_id text,
    message text,
    PRIMARY KEY (datamart, run_id)
);
CREATE INDEX IF NOT EXISTS gold_runs_datamart_finished ON gold_runs (datamart, finished_at DESC);
