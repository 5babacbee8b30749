"""PropertyRadar API: HTTP client, criteria catalogue, coercion of records and errors.

Nothing in this package imports Flask or the database, so it can be used from a
plain script, the RQ worker or the tests alike. The offline simulator of the API is not
part of the product: it is the top-level ``simulator`` package.
"""
