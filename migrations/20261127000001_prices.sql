-- Daily closing prices, the input of market.volatility and portfolio.risk.

-- Every symbol the platform has prices for; `frontier seed` and market-data loaders add to it.
CREATE TABLE IF NOT EXISTS symbols (
    symbol     TEXT PRIMARY KEY CHECK (symbol <> ''),
    source     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One close per symbol and trading day. The primary key (symbol, day) is also the index every
-- read uses: the latest N closes of a symbol are a backward range scan of it, and the aligned
-- histories of a portfolio are range scans of each of its symbols.
CREATE TABLE IF NOT EXISTS prices (
    symbol TEXT NOT NULL REFERENCES symbols (symbol) ON DELETE CASCADE,
    day    DATE NOT NULL,
    -- NaN sorts above every number in PostgreSQL, so `< Infinity` keeps NaN out too.
    close  DOUBLE PRECISION NOT NULL CHECK (close > 0 AND close < 'Infinity'::float8),
    PRIMARY KEY (symbol, day)
);
