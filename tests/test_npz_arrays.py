"""dataset=arrays on real Fashion-MNIST images saved as .npz in a temporary directory: every layout, and every
bad input (one UserError naming the file and the fix)."""

import numpy as np
import pytest

from nasrun.checks import UserError
from nasrun.data.arrays import arrays

from conftest import fashion_mnist_images


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW", "with test"])
def test_arrays_take_each_layout(tmp_path, data_root, layout):
    x, y = fashion_mnist_images(data_root, 200)
    extra = {}
    if layout == "NHWC":
        x = np.repeat(x[..., None], 3, axis=3)
    elif layout == "NCHW":
        x = np.repeat(x[:, None], 3, axis=1)
    elif layout == "with test":
        extra = dict(x_test=x[150:], y_test=y[150:])
        x, y = x[:150], y[:150]
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, **extra)
    data = arrays(str(tmp_path / "d.npz"), val_size=20, seed=0)
    channels = 3 if layout in ("NHWC", "NCHW") else 1
    test_images = 50 if extra else 40  # x_test, else test_fraction 0.2 of 200
    assert (data.in_channels, data.image_size, data.num_classes, len(data.test_x)) == (channels, 28, 10, test_images)
    # The pixels survive the layout change: the first training image is one of the file's images.
    flat = x.reshape(len(x), -1) if layout != "NHWC" else x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    assert (flat == data.train_x[0].flatten().numpy()).all(axis=1).any()


@pytest.mark.parametrize("fault,expected", [
    ("float images", "x_train has dtype float32; images must be uint8"),
    ("wrong shape", r"x_train has shape \(200, 784\)"),
    ("not square", "holds 28x14 images"),
    ("label out of range", "y_test holds the label 12, out of range 0 .. 9"),
    ("negative label", "y_train holds the label -1"),
    ("float labels", "y_train has dtype float64; labels must be integers"),
    ("too few labels", r"y_train has shape \(199,\); it needs one label per image \(200\)"),
    ("no x_train", "it needs x_train and y_train"),
    ("not an npz", "is not a readable .npz"),
    ("too big", r"200 images need 156.8 kB as uint8 at 28x28x1, more than dataset.memory_limit_gb=1e-06; use fewer"),
])
def test_bad_arrays_fail_in_one_line_naming_the_file(tmp_path, data_root, fault, expected):
    x, y = fashion_mnist_images(data_root, 200)
    arrays_ = dict(x_train=x, y_train=y)
    if fault == "float images":
        arrays_["x_train"] = x.astype(np.float32) / 255
    elif fault == "wrong shape":
        arrays_["x_train"] = x.reshape(200, -1)
    elif fault == "not square":
        arrays_["x_train"] = x[:, :, :14]
    elif fault == "label out of range":
        arrays_.update(x_test=x[:10], y_test=np.full(10, 12))
    elif fault == "negative label":
        arrays_["y_train"] = y - 1
    elif fault == "float labels":
        arrays_["y_train"] = y.astype(np.float64)
    elif fault == "too few labels":
        arrays_["y_train"] = y[:199]
    elif fault == "no x_train":
        arrays_ = dict(images=x, labels=y)
    file = tmp_path / "d.npz"
    np.savez(file, **arrays_)
    if fault == "not an npz":
        file.write_text("x_train,y_train\n")
    with pytest.raises(UserError, match=expected) as err:
        arrays(str(file), memory_limit_gb=1e-6 if fault == "too big" else None, seed=0)
    assert str(file) in str(err.value) and "\n" not in str(err.value)
