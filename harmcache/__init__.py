"""harmcache: extract video backbone features once; iterate on harmful-video heads from cache."""

__version__ = "0.1.0"
