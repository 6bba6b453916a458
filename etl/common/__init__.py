"""What every ETL command shares: the one domain error, CLI helpers and progress bars, store locks."""
