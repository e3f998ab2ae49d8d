//! The statements, as constants: the SQL text of a query event is exactly one of these, and
//! the primary key (symbol, day) of `prices` serves every read.

/// The latest `$2` closes of symbol `$1`, oldest first (a backward scan of the primary key).
pub const LATEST_CLOSES: &str = "SELECT day - DATE '1970-01-01' AS day, close FROM (\
    SELECT day, close FROM prices WHERE symbol = $1 ORDER BY day DESC LIMIT $2\
    ) AS latest ORDER BY day";
/// The latest closes of each symbol of `$1`, as many as the matching element of `$2`, by
/// symbol, oldest first (a backward scan of the primary key per symbol).
pub const LATEST_CLOSES_OF_MANY: &str = "SELECT wanted.symbol, latest.day - DATE '1970-01-01' AS day, latest.close \
    FROM UNNEST($1::text[], $2::bigint[]) AS wanted(symbol, n) \
    CROSS JOIN LATERAL (\
    SELECT day, close FROM prices WHERE prices.symbol = wanted.symbol ORDER BY day DESC LIMIT wanted.n\
    ) AS latest ORDER BY wanted.symbol, latest.day";
/// The closes of symbols `$1` (`$2` of them) on the latest `$3` days they all have.
pub const ALIGNED_CLOSES: &str = "WITH common AS (\
    SELECT day FROM prices WHERE symbol = ANY($1) GROUP BY day HAVING count(*) = $2 \
    ORDER BY day DESC LIMIT $3\
    ) SELECT p.symbol, p.day - DATE '1970-01-01' AS day, p.close \
    FROM prices AS p JOIN common USING (day) WHERE p.symbol = ANY($1) ORDER BY p.symbol, p.day";
/// Every registered symbol.
pub const KNOWN_SYMBOLS: &str = "SELECT symbol FROM symbols ORDER BY symbol";
/// Which of symbols `$1` are registered.
pub const EXISTING_SYMBOLS: &str = "SELECT symbol FROM symbols WHERE symbol = ANY($1) ORDER BY symbol";
/// Registers symbols `$1` from source `$2`, leaving known ones alone.
pub const INSERT_SYMBOLS: &str = "INSERT INTO symbols (symbol, source) \
    SELECT s, $2 FROM UNNEST($1::text[]) AS s ON CONFLICT (symbol) DO NOTHING";
/// Inserts or replaces closes from three parallel arrays and counts, per symbol, the rows that
/// were new or changed (a row already stored with the same close is not rewritten).
pub const UPSERT_CLOSES: &str = "WITH input AS (\
    SELECT * FROM UNNEST($1::text[], $2::int4[], $3::float8[]) AS t(symbol, day, close)\
    ), written AS (\
    INSERT INTO prices (symbol, day, close) \
    SELECT symbol, DATE '1970-01-01' + day, close FROM input \
    ON CONFLICT (symbol, day) DO UPDATE SET close = EXCLUDED.close \
    WHERE prices.close IS DISTINCT FROM EXCLUDED.close RETURNING symbol\
    ) SELECT symbol, count(*) AS changed FROM written GROUP BY symbol";
/// How many closes symbols `$1` have.
pub const COUNT_CLOSES: &str = "SELECT count(*) FROM prices WHERE symbol = ANY($1)";
