"""See the race: a load generator, the checks that prove who oversold, and the race demo.

`targets` is the one table of routes a crowd can rush; `crowd` fires the requests (aiohttp);
`ledger` reads the database afterwards and names every broken invariant; `race` runs the
same crowd at one coupon per strategy; `console` and `chart` show the results.
"""
