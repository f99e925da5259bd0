"""Dataset configuration modules in the seed's shape."""
