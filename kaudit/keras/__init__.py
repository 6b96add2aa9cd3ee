"""What Keras means, with no I/O: layer classes and their variables, configs, names and paths.

``config``  model_config / config.json -> a tree of layers (JSON only, never deserialised)
``layers``  which variables each Keras layer class owns, in Keras's order
``naming``  names as they stand in files -> canonical paths
``quantized``, ``lora``  Keras 3's quantized layers and LoRA adapters
``hub_blocks``  KerasHub's composite layers: the layer numbering of its adapter files
"""
