"""Storage: bytes in, datasets out; no Keras knowledge."""
