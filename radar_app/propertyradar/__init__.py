"""PropertyRadar API: HTTP client, criteria catalogue and an offline simulator.

Nothing in this package imports Flask or the database, so it can be used from a
plain script, the RQ worker or the tests alike.
"""
