"""Configures numba's cache before any compiled function of this package is defined."""
from flowscope._jit import configure_cache

configure_cache()
