"""Benchmarks that measure ciaostack against the OpenStack service it stands in for."""
