"""The live dashboard: a page served by the service (plain HTML/JS/CSS in `static/`, no build
step, nothing from the internet), a JSON stats endpoint it polls, and the race demo button.

`stats` computes rates from the ledgers' timestamps (no cost on the claim path) and counts
refusals per process; `race_job` runs one race at a time in the background; `routes` mounts
it all under /dashboard (and the page at /).
"""
