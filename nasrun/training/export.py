"""The trained model as files that run without nasrun's source: model.pt2 (`torch.export`) and, where the
optional `onnx` extra is installed, model.onnx.

Both take float32 NCHW images on the 0-255 pixel scale (uint8 images cast with `.float()`) and return logits:
the per-channel normalisation of the training is part of the exported graph, so a user needs no mean or std.
The batch size is dynamic. Each file is checked after it is written: loaded back, it must give the trained
model's outputs on real images (the largest difference is logged and returned).

    program = torch.export.load("model.pt2"); logits = program.module()(images.float())
"""

from __future__ import annotations

import io
import logging
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from nasrun.rundir.atomic import write_bytes

log = logging.getLogger(__name__)

TOLERANCE = 1e-3  # logits of an fp32 CPU model and its exported graph agree to ~1e-5; more means a broken export


def normalized(model, mean, std):
    """`model` behind the training's normalisation: pixels (0-255) in, logits out."""
    import torch

    class Normalized(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

        def forward(self, images):
            return self.model((images - self.mean) / self.std)

    return Normalized().eval()


def export_model(model, info: dict, run_dir: Path, images) -> dict:
    """Write model.pt2 (and model.onnx where onnx and onnxscript are installed) for the trained `model`, whose
    best.json content is `info` (mean, std, input shape); `images`: a few real uint8 images to check them on.
    Returns {file name: largest absolute difference of its logits from the model's}."""
    import torch

    wrapped = normalized(model.to("cpu", memory_format=torch.contiguous_format).float().eval(), info["mean"],
                         info["std"])
    pixels = images.to("cpu").float().contiguous()
    with torch.inference_mode():
        expected = wrapped(pixels)
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(wrapped, (pixels,), dynamic_shapes={"images": {0: batch}})
    # Through memory: torch.export wants a file name ending in .pt2, and ours are unique temporary names.
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    buffer.seek(0)
    checked = {"model.pt2": _difference(torch.export.load(buffer).module()(pixels), expected, "model.pt2")}
    write_bytes(Path(run_dir) / "model.pt2", buffer.getvalue())
    if find_spec("onnx") is not None and find_spec("onnxscript") is not None:
        for name in ("onnxscript", "onnx_ir"):  # their INFO lines narrate each optimisation pass
            logging.getLogger(name).setLevel(logging.WARNING)
        # In memory too: written to a file, the exporter would put the weights beside it under the temporary name.
        onnx_program: Any = torch.onnx.export(wrapped, (pixels,), dynamo=True, input_names=["images"],
                                              output_names=["logits"], dynamic_shapes={"images": {0: batch}},
                                              verbose=False)
        proto = onnx_program.model_proto
        content = proto.SerializeToString()
        checked["model.onnx"] = None  # type: ignore[assignment]  # written, not checked, where onnxruntime is not installed
        if find_spec("onnxruntime") is not None:
            import onnxruntime

            session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
            out = torch.from_numpy(session.run(None, {"images": pixels.numpy()})[0])
            checked["model.onnx"] = _difference(out, expected, "model.onnx")
        write_bytes(Path(run_dir) / "model.onnx", content)
    else:
        log.info("model.onnx not written: install the onnx extra (pip install 'nasrun[onnx]') for it")
    return checked


def _difference(out, expected, name: str) -> float:
    import torch

    with torch.inference_mode():
        diff = (out.detach().float() - expected).abs().max().item()
    if not diff <= TOLERANCE:  # also catches NaN
        raise RuntimeError(f"{name}: the exported model's logits differ from the trained model's by {diff:.3g}")
    log.info("%s: its logits match the trained model's to %.2g", name, diff)
    return diff
