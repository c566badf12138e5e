import numpy as np
import pytest
import torch

from nasrun.checks import UserError
from nasrun.data.builtin import (
    MNIST_FILES,
    cifar10,
    crop_and_flip,
    fashion_mnist,
    make_splits,
    mnist,
    read_cifar10_binary,
    synthetic,
)

from conftest import write_fake_mnist


def test_splits_are_disjoint_seeded_and_sized():
    x = (np.arange(1000) % 256).astype(np.uint8)[:, None, None, None] * np.ones((1, 1, 16, 16), np.uint8)
    ids = np.arange(1000)

    def split(seed):
        return make_splits("t", lambda: (x, ids, x[:10], ids[:10]), 10, fraction=0.5, val_fraction=0.1,
                           batch_size=8, seed=seed, device="cpu")

    d = split(3)
    train, val = set(d.train_y.tolist()), set(d.val_y.tolist())
    assert len(val) == 100 and len(train) == 450 and not train & val
    again, other = split(3), split(4)
    assert torch.equal(again.val_y, d.val_y) and not torch.equal(other.val_y, d.val_y)


def test_batches_are_normalised_shuffled_and_cover_the_split():
    d = synthetic(num_train=300, seed=0)
    seen = torch.cat([y for _, y in d.train_batches(torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == sorted(d.train_y.tolist()) and not torch.equal(seen, d.train_y)
    xs = torch.cat([x for x, _ in d.train_batches(torch.Generator().manual_seed(0))])
    assert abs(xs.mean().item()) < 0.05 and abs(xs.std().item() - 1) < 0.05
    assert sum(len(y) for _, y in d.eval_batches("val")) == len(d.val_y)
    assert sum(len(y) for _, y in d.eval_batches("test", batch_size=7)) == len(d.test_y)


def test_crop_and_flip_gives_a_padded_crop_or_its_mirror_of_each_image():
    x = torch.randn(6, 2, 8, 8)
    out = crop_and_flip(x, torch.Generator().manual_seed(0), pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    flips = 0
    for i in range(6):
        crops = {(dy, dx, f): (padded[i, :, dy:dy + 8, dx:dx + 8].flip(2) if f else padded[i, :, dy:dy + 8, dx:dx + 8])
                 for dy in range(5) for dx in range(5) for f in (0, 1)}
        matches = [k for k, c in crops.items() if torch.equal(c, out[i])]
        assert matches, f"sample {i} is not a crop of its padded image"
        flips += all(k[2] for k in matches)
    assert flips > 0  # seed 0 flips some of the six


def test_mnist_loader_reads_torchvision_layout(tmp_path):
    write_fake_mnist(tmp_path)
    d = mnist(root=str(tmp_path), download=False, val_fraction=0.1, seed=0)
    assert d.train_x.shape == (180, 1, 28, 28) and d.val_x.shape[0] == 20 and d.test_x.shape[0] == 50
    assert d.train_x.dtype == torch.uint8 and d.num_classes == 10


def test_missing_files_give_one_line_naming_folder_files_and_fix(tmp_path):
    with pytest.raises(UserError) as err:
        fashion_mnist(root=str(tmp_path), download=False)
    message = str(err.value)
    assert "\n" not in message
    for part in (str(tmp_path / "FashionMNIST" / "raw"), "train-images-idx3-ubyte", "dataset.root", "NASRUN_DATA"):
        assert part in message
    with pytest.raises(UserError, match="cifar-10-batches-bin"):
        cifar10(root=str(tmp_path), download=False)


@pytest.mark.parametrize("dataset,folder,gone", [
    ("cifar10", "cifar-10-batches-bin", ["data_batch_3.bin"]),
    ("fashion_mnist", "FashionMNIST/raw", ["t10k-labels-idx1-ubyte", "train-images-idx3-ubyte"]),
])
def test_a_folder_missing_some_files_names_just_those_first(data_root, tmp_path, dataset, folder, gone):
    """One batch file of six gone: the line names that file (not all six), how many are there, and the fix."""
    (tmp_path / folder).mkdir(parents=True)
    for real in (data_root / folder).iterdir():
        if real.is_file() and real.name not in gone:
            (tmp_path / folder / real.name).symlink_to(real)
    load = {"cifar10": cifar10, "fashion_mnist": fashion_mnist}[dataset]
    with pytest.raises(UserError) as caught:
        load(root=str(tmp_path), download=False)
    message = str(caught.value)
    total = 6 if dataset == "cifar10" else 4
    assert message.startswith(f"{'CIFAR-10' if dataset == 'cifar10' else 'FashionMNIST'}: {tmp_path / folder} lacks "
                              f"{', '.join(sorted(gone, key=message.index))} ({total - len(gone)} of {total} files")
    assert "copy " in message and "dataset.root=DIR" in message and "\n" not in message
    assert len(message.replace(str(tmp_path), "")) < 260  # short enough to read: not all the file names


def test_cifar10_binary_layout_from_shared_data(data_root):
    folder = data_root / "cifar-10-batches-bin"
    train_x, train_y, test_x, test_y = read_cifar10_binary(folder)
    assert train_x.shape == (50000, 3, 32, 32) and test_x.shape == (10000, 3, 32, 32)
    assert set(np.unique(train_y)) == set(range(10)) and np.bincount(test_y).tolist() == [1000] * 10
    first = np.fromfile(folder / "data_batch_1.bin", dtype=np.uint8, count=3073)
    assert train_y[0] == first[0] and np.array_equal(train_x[0].reshape(-1), first[1:])
    d = cifar10(root=str(data_root), download=False, fraction=0.1, seed=0)
    assert d.augment and d.in_channels == 3 and d.image_size == 32 and len(d.val_y) == 5000


def test_fashion_mnist_from_shared_data(data_root):
    d = fashion_mnist(root=str(data_root), download=False, fraction=0.5, seed=1)
    assert d.train_x.shape == (27000, 1, 28, 28) and len(d.val_y) == 6000 and len(d.test_y) == 10000
    assert not d.augment


def test_bad_split_options_fail_before_any_read_or_download(tmp_path):
    with pytest.raises(ValueError, match="fraction"):  # not the missing-files error: nothing was read
        fashion_mnist(root=str(tmp_path), download=True, fraction=2)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("kwargs,key", [({"fraction": 0}, "fraction"), ({"val_fraction": 0.9}, "val_fraction"),
                                        ({"batch_size": 0}, "batch_size"), ({"image_size": 8}, "image_size"),
                                        ({"val_size": 0}, "val_size"), ({"eval_batch_size": 0}, "eval_batch_size")])
def test_bad_dataset_values_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        synthetic(**kwargs)


def test_val_size_holds_out_that_many_images_and_eval_batches_have_their_own_size(data_root):
    d = fashion_mnist(root=str(data_root), download=False, fraction=0.02, val_size=2000, eval_batch_size=100, seed=0)
    assert len(d.val_y) == 2000 and len(d.train_y) == round(0.02 * 58000)
    assert [len(y) for _, y in d.eval_batches("val")] == [100] * 20
    with pytest.raises(UserError, match="val_size=70000"):
        fashion_mnist(root=str(data_root), download=False, val_size=70000)


def failing_download(dataset):
    """Stands in for torchvision's download: creates its folders and a partial file, then loses the network."""
    from pathlib import Path

    raw = Path(dataset.root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(b"partial")
    raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")


def test_a_failed_download_leaves_nothing_behind_and_names_the_files(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "download", failing_download)
    fresh = tmp_path / "data"  # like ./data on a first run: nasrun must not leave it behind
    with pytest.raises(UserError) as err:
        fashion_mnist(root=str(fresh), download=True)
    assert not fresh.exists()
    message = str(err.value)
    assert "download failed" in message and "t10k-labels-idx1-ubyte" in message
    assert str(fresh / "FashionMNIST" / "raw") in message and "\n" not in message

    shared = tmp_path / "shared"  # an existing data folder (NASRUN_DATA) keeps what it had, and only that
    (shared / "FashionMNIST").mkdir(parents=True)
    (shared / "FashionMNIST" / "notes.txt").write_text("mine")
    (shared / "other.bin").write_bytes(b"x")
    with pytest.raises(UserError):
        fashion_mnist(root=str(shared), download=True)
    assert sorted(p.relative_to(shared).as_posix() for p in shared.rglob("*")) == \
        ["FashionMNIST", "FashionMNIST/notes.txt", "other.bin"]


def test_synthetic_data_is_learnable_in_one_epoch_by_the_smallest_network():
    """A 1-epoch smoke run must land far from chance (25 %), or it cannot tell a broken trainer from a weak net."""
    from nasrun.evaluators.train import TrainingEvaluator
    from nasrun.spaces.custom import CustomSpace

    smallest = CustomSpace().make(dict(conv3=1, num_block=1, conv5=1, feature=64, dropout=0.75))
    metrics, _ = TrainingEvaluator(CustomSpace(), synthetic(seed=0), epochs=1, seed=0, precision="fp32")(smallest)
    assert metrics["val_acc"] >= 60


def _copy_with_damage(data_root, tmp_path, folder, names, damaged, change):
    """A dataset root holding links to the real files, with one damaged copy."""
    (tmp_path / folder).mkdir(parents=True)
    for name in names:
        target = tmp_path / folder / name
        if name == damaged:
            target.write_bytes(change((data_root / folder / name).read_bytes()))
        else:
            target.symlink_to(data_root / folder / name)
    return tmp_path


CIFAR_NAMES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
FLIP = lambda data: data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]  # noqa: E731


@pytest.mark.parametrize("folder,names,damaged,change,message", [
    # One CIFAR-10 record fewer: still whole records, so the reader alone would train on 9999 images silently.
    ("cifar-10-batches-bin", CIFAR_NAMES, "data_batch_3.bin", lambda d: d[:-3073], "30,726,927 bytes, but"),
    ("cifar-10-batches-bin", CIFAR_NAMES, "test_batch.bin", FLIP, "md5 "),
    ("FashionMNIST/raw", MNIST_FILES, "train-labels-idx1-ubyte", lambda d: d[:-10], "59,998 bytes, but"),
    ("FashionMNIST/raw", MNIST_FILES, "t10k-images-idx3-ubyte", FLIP, "(damaged)"),
])
def test_damaged_dataset_files_are_named_in_one_line(data_root, tmp_path, monkeypatch, folder, names, damaged,
                                                     change, message):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = _copy_with_damage(data_root, tmp_path / "data", folder, names, damaged, change)
    load = cifar10 if folder.startswith("cifar") else fashion_mnist
    with pytest.raises(UserError) as err:
        load(root=str(root), download=False, fraction=0.01)
    assert str(root / folder / damaged) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value) and "dataset.verify=false" in str(err.value)
    if change is FLIP:  # readable, so dataset.verify=false takes it as it is
        assert len(load(root=str(root), download=False, fraction=0.01, verify=False).test_y) == 10000


def test_dataset_checks_are_remembered_per_file_version(data_root, tmp_path, monkeypatch):
    from nasrun.data import checksums

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    hashed = []
    real_md5 = checksums._md5
    monkeypatch.setattr(checksums, "_md5", lambda path: hashed.append(path.name) or real_md5(path))
    monkeypatch.setattr(checksums, "_verified_here", set())  # as in a new process
    names = [f"FashionMNIST/raw/{n}" for n in MNIST_FILES]
    checksums.verify_files(data_root, names, "fix")
    assert sorted(hashed) == sorted(MNIST_FILES)
    checksums._verified_here.clear()  # another new process: the cache file answers
    checksums.verify_files(data_root, names, "fix")
    assert len(hashed) == 4 and (tmp_path / "cache" / "nasrun" / "verified.json").is_file()
