"""Small KerasHub backbones of every family kaudit's KerasHub table covers (kaudit/keras/hub_blocks.py),
built from configs (no download) for the tests that hold kaudit to Keras's own answers (the
``keras_hub_models`` fixture of conftest.py gives the modules)."""

from __future__ import annotations

FAMILIES = ["bert", "distil_bert", "roberta", "gpt2", "gemma", "gemma2", "gemma3", "llama", "mistral", "qwen", "phi3"]


def backbone(keras_hub, family: str):
    """A two-layer backbone of ``family`` (one of :data:`FAMILIES`), hidden size 8."""
    M = keras_hub.models
    small = {"vocabulary_size": 50, "num_layers": 2, "hidden_dim": 8, "intermediate_dim": 16}
    gqa = dict(small, num_query_heads=2, num_key_value_heads=1)
    enc = dict(small, num_heads=2, max_sequence_length=16)
    gem = dict(gqa, head_dim=4)
    build = {
        "bert": lambda: M.BertBackbone(**enc),
        "distil_bert": lambda: M.DistilBertBackbone(**enc),
        "roberta": lambda: M.RobertaBackbone(**enc),
        "gpt2": lambda: M.GPT2Backbone(**enc),
        "gemma": lambda: M.GemmaBackbone(**gem),
        "gemma2": lambda: M.GemmaBackbone(**gem, use_post_ffw_norm=True, use_post_attention_norm=True),
        "gemma3": lambda: M.Gemma3Backbone(**gem, image_size=16, vision_encoder=None),
        "llama": lambda: M.LlamaBackbone(**gqa),
        "mistral": lambda: M.MistralBackbone(**gqa),
        "qwen": lambda: M.QwenBackbone(**gqa),
        "phi3": lambda: M.Phi3Backbone(**gqa),
    }
    return build[family]()
