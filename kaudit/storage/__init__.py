"""Storage: bytes in, datasets out. No Keras knowledge lives here.

``hdf5``           the one HDF5 interface the readers use: walk, attributes, dataset checks, the store
``hdf5_parse``     HDF5 metadata in bounded pure Python (the layouts Keras writes; as strict as libhdf5)
``hdf5_guards``    h5py behind one guard per threat, for what the parser leaves to the HDF5 library
``hdf5_store``     the values of either, read in bounded blocks (``os.preadv`` where contiguous)
``ziparchive``     zip members (the ``.keras`` container), CRC-checked
``tensor_bundle``  TensorFlow tensor bundles (TF2 checkpoints, SavedModel variables), CRC32C-checked
"""
