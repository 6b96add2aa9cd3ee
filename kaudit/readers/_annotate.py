"""Readers' annotations of the variables Keras knowledge explains beyond their names: the roles
of a quantized layer's variables (``Variable.quant``) and LoRA adapters (``Variable.lora``)."""

from __future__ import annotations

from dataclasses import replace

from ..checkpoint import Variable
from ..keras import quantized as Q


def quantized(out: list[Variable], start: int, class_name: str | None, config: dict,
              trainable: list[bool]) -> None:
    """Annotate ``out[start:]`` (one layer's own variables, just read, in stored order; their
    trainable flags by design) in place when the layer's config says it is quantized, and put
    them in Keras's ``layer.weights`` order for a loaded model: trainable first (a quantized kernel
    is not; the bias built before it is), float8 state before the kernel, else stored order."""
    own = out[start:]
    if not own:
        return
    infos = Q.annotate(class_name, config, [(v.name, v.shape) for v in own])
    if not any(infos):
        return
    rows = [replace(v, quant=info) if info is not None else v for v, info in zip(own, infos, strict=True)]
    if len(trainable) != len(rows):
        return
    # a float8 layer builds its scales and histories before its kernel
    order = sorted(range(len(rows)), key=lambda i: (not trainable[i], not (infos[i] and infos[i].role == "state")))
    out[start:] = [rows[i] for i in order]
