"""The benchmark suite: `make bench` (or `python -m benchmarks.run [--quick]`).

It starts its own `couponapi serve` against a fresh database on the private PostgreSQL,
drives it with wrk (claim.lua gives every request a user nobody used before), checks the
database after every run, measures PostgreSQL's own ceiling with pgbench, and writes
results/*.json, results/RESULTS.md and results/claims.png. Figures are never asserted.
"""
