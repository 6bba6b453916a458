"""The ETL commands, thin over the packages beside them: ingest, render, show, info, download, demo data,
report. etl/cli.py maps their options and errors to the command line."""
