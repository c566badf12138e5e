"""dataset=folder on real Fashion-MNIST images written as PNGs to a temporary directory: labels, cache, resizing,
every bad input (one UserError naming the file and the fix, nothing half-written left in the cache), and
worker processes under SIGKILL and Ctrl-C."""

import os

import pytest
import torch
from PIL import Image

from nasrun.checks import UserError
from nasrun.data import folder as image_folder
from nasrun.data.folder import folder

from conftest import fashion_mnist_images, write_image_folder


@pytest.fixture
def images(tmp_path, data_root):
    return write_image_folder(tmp_path / "images", data_root, n_train=90, n_test=30)


def test_folder_reads_the_real_images_with_their_labels_and_caches_them(images, tmp_path, data_root, monkeypatch):
    cache = tmp_path / "cache"
    data = folder(str(images), cache_dir=str(cache), val_size=10, seed=0)
    assert data.classes == ("pullover", "trouser", "tshirt")  # sorted folder names, as torchvision's ImageFolder
    assert (data.in_channels, data.image_size, data.num_classes) == (1, 28, 3)
    assert len(data.train_x) + len(data.val_x) == 90 and len(data.test_x) == 30
    # The pixels are the PNGs' pixels: every test image is one of the real test images, with its label.
    x, y = fashion_mnist_images(data_root, 500, "test")
    names = {0: "tshirt", 1: "trouser", 2: "pullover"}
    for image, label in zip(data.test_x[:5], data.test_y[:5]):
        match = [i for i in range(len(x)) if torch.equal(torch.from_numpy(x[i]), image[0])]
        assert match and names[int(y[match[0]])] == data.classes[int(label)]
    assert len(list(cache.iterdir())) == 1
    # The second start reads the cache: nothing is decoded.
    monkeypatch.setattr(image_folder, "decode_all", lambda *a, **k: pytest.fail("decoded again"))
    again = folder(str(images), cache_dir=str(cache), val_size=10, seed=0)
    assert torch.equal(again.train_x, data.train_x) and torch.equal(again.test_y, data.test_y)


def test_folder_without_test_holds_out_a_fixed_share_and_resizes_and_converts(images, tmp_path):
    import shutil

    shutil.rmtree(images / "test")
    a = folder(str(images), image_size=16, channels=3, test_fraction=0.2, cache_dir=None, val_size=5, seed=0)
    b = folder(str(images), image_size=16, channels=3, test_fraction=0.2, cache_dir=None, val_size=5, seed=1)
    assert a.test_x.shape == (18, 3, 16, 16) and a.train_x.dtype == torch.uint8
    assert torch.equal(a.test_x, b.test_x)  # the test set does not move with the run seed; the validation set does
    assert not torch.equal(a.val_x, b.val_x)


def test_a_damaged_cache_is_rebuilt_with_a_warning(images, tmp_path, caplog):
    cache = tmp_path / "cache"
    folder(str(images), cache_dir=str(cache), seed=0)
    (file,) = cache.iterdir()
    file.write_bytes(file.read_bytes()[:100])
    data = folder(str(images), cache_dir=str(cache), seed=0)
    assert "damaged" in caplog.text and len(data.test_x) == 30


@pytest.mark.parametrize("fault", ["empty class", "truncated", "not an image", "mixed sizes", "too big", "one class"])
def test_bad_folders_fail_in_one_line_naming_the_file_and_leave_no_cache(images, tmp_path, fault):
    cache = tmp_path / "cache"
    first = sorted((images / "train" / "trouser").iterdir())[0]
    expected = {"empty class": "class folder .*empty.* holds no images",
                "truncated": "cannot read the image .*00",
                "not an image": "cannot read the image .*broken.png",
                "mixed sizes": "is 20x20 but the first image is 28x28; set dataset.image_size=N",
                "too big": r"images need 94.1 kB as uint8 at 28x28x1, more than dataset.memory_limit_gb=1e-05; "
                           r"set dataset.image_size=9 or lower",
                "one class": "1 class folder"}[fault]
    if fault == "empty class":
        (images / "train" / "empty").mkdir()
    elif fault == "truncated":
        first.write_bytes(first.read_bytes()[:60])
    elif fault == "not an image":
        (images / "train" / "trouser" / "broken.png").write_text("no picture here")
    elif fault == "mixed sizes":
        Image.new("L", (20, 20)).save(images / "train" / "trouser" / "small.png")
    elif fault == "one class":
        import shutil

        for name in ("trouser", "pullover"):
            shutil.rmtree(images / "train" / name)
        shutil.rmtree(images / "test")
    limit = 1e-5 if fault == "too big" else None
    with pytest.raises(UserError, match=expected):
        folder(str(images), cache_dir=str(cache), memory_limit_gb=limit, seed=0)
    assert not cache.exists() or not list(cache.iterdir())


def test_a_missing_folder_or_test_class_is_named(images, tmp_path):
    with pytest.raises(UserError, match="dataset.path=.*nowhere: no such folder"):
        folder(str(tmp_path / "nowhere"), seed=0)
    (images / "test" / "hat").mkdir()
    Image.new("L", (28, 28)).save(images / "test" / "hat" / "a.png")
    with pytest.raises(UserError, match="test/hat is a class with no training images"):
        folder(str(images), cache_dir=None, seed=0)


def test_decode_workers_end_when_nasrun_is_killed(tmp_path):
    """SIGKILL of the process decoding a folder takes its worker processes with it (no orphans waiting forever)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    pids = tmp_path / "pids"
    script = f"""
import os, sys, time
from nasrun.data import folder as image_folder
image_folder.PARALLEL_FROM = 1
def stuck(paths, *args):  # a worker that would decode for ten minutes
    with open({str(pids)!r}, "a") as f:
        f.write(f"{{os.getpid()}}\\n")
    time.sleep(600)
image_folder.decode_chunk = stuck
image_folder.decode_all([f"image{{i}}.png" for i in range(400)], 28, 1, True, workers=2)
"""
    parent = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not pids.exists() or len(pids.read_text().split()) < 2):
        time.sleep(0.1)
    workers = [int(p) for p in pids.read_text().split()]
    assert len(workers) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie (exited, not yet reaped by init) counts as ended.
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(alive(p) for p in workers)


def test_ctrl_c_while_decoding_ends_in_seconds_without_worker_tracebacks(tmp_path):
    """Ctrl-C reaches nasrun and its decode workers (one process group): the queued chunks are dropped rather
    than decoded first, and the caller sees KeyboardInterrupt and nothing else on stderr."""
    import signal
    import subprocess
    import sys
    import time

    started = tmp_path / "started"
    script = f"""
import os, sys, time
from nasrun.data import folder as image_folder
image_folder.PARALLEL_FROM = 1
def slow(paths, *args):  # each chunk takes a second
    open({str(started)!r}, "a").write("x")
    time.sleep(1)
    return image_folder.np.zeros((len(paths), 1, 28, 28), dtype=image_folder.np.uint8)
image_folder.decode_chunk = slow
try:
    image_folder.decode_all([f"image{{i}}.png" for i in range(4000)], 28, 1, True, workers=2)
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not started.exists():
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    began = time.monotonic()
    _, err = proc.communicate(timeout=30)
    # 4000 images in chunks of 250 over 2 workers would take 8 s; dropping the queue leaves the running chunks.
    assert proc.returncode == 130 and time.monotonic() - began < 4
    assert err.strip() == "interrupted", err
