"""harmcache: extract video backbone features once, iterate on harmful-video heads from the cache."""

__version__ = "0.1.0"
