"""The wire protocol: message types, error and close codes, client-frame decoding, server messages.

Imports nothing of Django or of the rest of the engine, so clients and benchmarks use it as it is.
"""
