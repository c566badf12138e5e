"""model.pt2 (and model.onnx) reproduce the trained model's outputs, with the normalisation inside."""

import pytest
import torch

from nasrun.spaces.macro import MacroSpace
from nasrun.training.export import export_model, normalized

INFO = {"mean": [120.0, 110.0, 100.0], "std": [60.0, 61.0, 62.0]}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("export")
    space = MacroSpace(3)
    torch.manual_seed(0)
    model = space.build(space.from_key("3x3-24<0|5x1-36<0.1|1x7-24<2"), 3, 32, 10)
    with torch.no_grad():  # BN statistics that are not the identity, so eval mode matters
        model.train()(torch.randn(64, 3, 32, 32))
    model = model.eval().to(memory_format=torch.channels_last)  # as training leaves it
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    checked = export_model(model, INFO, run_dir, images)
    return run_dir, model, checked


def test_the_exported_program_loads_without_nasrun_and_matches_on_any_batch_size(exported):
    run_dir, model, checked = exported
    assert checked["model.pt2"] <= 1e-4
    program = torch.export.load(run_dir / "model.pt2").module()  # torch alone: no nasrun class inside
    reference = normalized(model, INFO["mean"], INFO["std"])
    for batch in (1, 7):
        pixels = torch.randint(0, 256, (batch, 3, 32, 32)).float()
        with torch.inference_mode():
            assert torch.allclose(program(pixels), reference(pixels), atol=1e-4)
    assert not any(p.name.endswith(".tmp") for p in run_dir.iterdir())  # written atomically, nothing left over


def test_onnx_is_written_and_checked_where_the_extra_is_installed(exported):
    pytest.importorskip("onnxscript")
    onnxruntime = pytest.importorskip("onnxruntime")
    run_dir, model, checked = exported
    assert checked["model.onnx"] <= 1e-4
    session = onnxruntime.InferenceSession(str(run_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    pixels = torch.randint(0, 256, (5, 3, 32, 32)).float()
    with torch.inference_mode():
        expected = normalized(model, INFO["mean"], INFO["std"])(pixels)
    assert torch.allclose(torch.from_numpy(session.run(None, {"images": pixels.numpy()})[0]), expected, atol=1e-4)
