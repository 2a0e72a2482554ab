"""The cross-encoder in torch (imported only for training, the torch backend and the GPU path).

A BERT encoder over "[CLS] question [SEP] path text [SEP]", mean-pooled over the tokens, then one linear
layer to a logit. Mean pooling, not BertForSequenceClassification's [CLS] pooler: the packaged
all-MiniLM-L6-v2 was trained with mean pooling and its [CLS] state is close to constant (measured on
MetaQA pairs: [CLS] states of different pairs lie ~0.01 apart, mean-pooled ones 2.5-5.5), so a [CLS] head
learns nothing in the few hundred steps a CPU can afford. It is a transformers PreTrainedModel:
save_pretrained / from_pretrained write and read a standard folder (config.json, model.safetensors with
`bert.*` and `classifier.*` weights), which kgqa.encoder.BertEncoder also reads for numpy inference.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from transformers import BertConfig, BertModel, BertPreTrainedModel

POOLING = "mean"


class BertMeanPoolCrossEncoder(BertPreTrainedModel):
    """One logit per text pair: linear(mean over tokens of BERT's last hidden states)."""

    config_class = BertConfig

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.classifier(self.dropout(pooled))[:, 0]


def new_cross_encoder(base_model: Path, layers: int):
    """A cross-encoder on `base_model` (its first `layers` layers), the classifier new; and the tokenizer."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from kgqa.errors import InputError

    config = BertConfig.from_pretrained(str(base_model))
    if not 1 <= layers <= config.num_hidden_layers:
        raise InputError(f"--layers {layers}: the base model has 1 to {config.num_hidden_layers} layers")
    config.num_hidden_layers = layers
    config.kgqa_pooling = POOLING
    config.architectures = ["BertMeanPoolCrossEncoder"]
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.ERROR)  # "classifier newly initialised, layers 3-5 unused" is the point
    try:
        model = BertMeanPoolCrossEncoder.from_pretrained(str(base_model), config=config, attn_implementation="sdpa")
    finally:
        hf_logging.set_verbosity(verbosity)
    return model, AutoTokenizer.from_pretrained(str(base_model))


def load_cross_encoder(model_dir: Path, dtype: torch.dtype = torch.float32) -> BertMeanPoolCrossEncoder:
    return BertMeanPoolCrossEncoder.from_pretrained(str(model_dir), attn_implementation="sdpa", dtype=dtype)
