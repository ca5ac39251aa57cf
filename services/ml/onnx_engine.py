"""ONNX Runtime as the CPU engine of an encoder with no adapter layers (a merged copy: SUITE_MERGED_TASKS).

Why: on the CPU, ONNX Runtime runs MiniLM-L6's forward pass about twice as fast as eager PyTorch with the same float32
weights (10 pairs of ~50 tokens on 2 cores: 37 against 80 ms; outputs agree to ~3e-6), by fusing attention, GELU and
layer norm into single kernels. The support desk's cross-encoder runs on every answer, so its latency is the answer's.

The model is exported in memory (torch.onnx, the TorchScript exporter, dynamic batch and sequence axes) when the
adapter loads (a second or two for MiniLM) and never written to disk: nothing to cache or invalidate, and the session
holds the weights, so the torch copy can be dropped. Only the encoder is exported; pooling and the classification head
stay in torch (services/ml/encoder.py), shared with the eager path.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import torch

from services.errors import SuiteError

class _LastHidden(torch.nn.Module):
    """The encoder as the exporter traces it: named tensors in, last_hidden_state (batch, seq, hidden) out."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class OnnxEncoder:
    """An exported encoder: `hidden(batch)` returns what `model(**batch).last_hidden_state` would, as a CPU tensor."""

    def __init__(self, model: torch.nn.Module, *, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # requirements.txt installs it; a trimmed environment can choose the torch engine
            raise SuiteError("SUITE_CPU_ENGINE=onnxruntime needs the onnxruntime package (pip install onnxruntime), "
                             "or set SUITE_CPU_ENGINE=torch.", field="SUITE_CPU_ENGINE") from exc
        model = model.to("cpu").eval()
        vocab = int(getattr(model.config, "vocab_size", 100))
        sample = torch.randint(1, max(2, min(vocab, 1000)), (2, 8), dtype=torch.long)  # (batch, seq): shapes are dynamic
        mask = torch.ones_like(sample)
        mask[1, 5:] = 0  # a padded row, so the traced graph carries the padding path
        axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                "hidden": {0: "batch", 1: "seq"}}
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about Python-side shape checks, expected for HF models
            torch.onnx.export(_LastHidden(model).eval(), (sample, mask), buffer, input_names=["input_ids", "attention_mask"],
                              output_names=["hidden"], dynamic_axes=axes, opset_version=17, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-wait after each call
        self.session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        self.onnx_bytes = len(buffer.getvalue())

    def hidden(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        feed = {"input_ids": batch["input_ids"].cpu().numpy().astype(np.int64),
                "attention_mask": batch["attention_mask"].cpu().numpy().astype(np.int64)}
        return torch.from_numpy(self.session.run(["hidden"], feed)[0])  # (batch, seq, hidden)
