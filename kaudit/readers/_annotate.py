"""Readers' annotations of the variables Keras knowledge explains beyond their names: the roles
of a quantized layer's variables (``Variable.quant``) and LoRA adapters (``Variable.lora``)."""

from __future__ import annotations

from dataclasses import replace

from ..checkpoint import Variable
from ..keras import lora as LORA
from ..keras import quantized as Q


def layer(out: list[Variable], start: int, class_name: str | None, config: dict, trainable: list[bool]) -> None:
    """Everything below for the variables ``out[start:]`` of one layer."""
    quantized(out, start, class_name, config, trainable)
    lora_merged(out, start, class_name, config)


def lora_merged(out: list[Variable], start: int, class_name: str | None, config: dict) -> None:
    """A layer saved with LoRA enabled stores its weight with the adapter added: say so."""
    found = LORA.merged(class_name, config)
    if found is None:
        return
    name, info = found
    for i in range(start, len(out)):
        if out[i].name == name:
            out[i] = replace(out[i], lora=info)


def quantized(out: list[Variable], start: int, class_name: str | None, config: dict, trainable: list[bool]) -> None:
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
    state = [q is not None and q.role == "state" for q in infos]
    order = sorted(range(len(rows)), key=lambda i: (not trainable[i], not state[i]))
    out[start:] = [rows[i] for i in order]
