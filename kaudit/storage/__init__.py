"""Storage: bytes in, datasets out. No Keras knowledge lives here.

``hdf5_parse``     HDF5 metadata in bounded pure Python (the layouts Keras writes)
``hdf5``           h5py behind guards, and the value store both parsers feed
``ziparchive``     zip members (the ``.keras`` container), CRC-checked
``tensor_bundle``  TensorFlow tensor bundles (TF2 checkpoints, SavedModel variables), CRC32C-checked
"""
