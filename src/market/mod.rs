//! Daily price history in PostgreSQL: migrations, the price store, seeding, and DB query events.
