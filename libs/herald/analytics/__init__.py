"""Hourly analytics: the rollup that fills the analytics table, and the queries that read it."""
