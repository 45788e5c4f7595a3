"""Benchmarks: ouro-obs against a bare app and peer packages (``python -m benchmarks.overhead``)."""
