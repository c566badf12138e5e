"""What users' datasets share: the path check, the fixed test hold-out, the memory check before loading."""

import numpy as np
import pytest

from nasrun.checks import UserError
from nasrun.data.user import check_memory, existing_path, hold_out_test


def test_the_test_hold_out_is_fixed_and_disjoint():
    x, y = np.arange(100), np.arange(100) % 3
    a = hold_out_test(x, y, 0.2)
    b = hold_out_test(x, y, 0.2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert len(a[2]) == 20 and not set(a[0]) & set(a[2]) and set(a[0]) | set(a[2]) == set(x)
    with pytest.raises(UserError, match="test_fraction=0.9: 1 images leave none"):
        hold_out_test(x[:1], y[:1], 0.9)


def test_memory_is_checked_before_loading_with_the_size_that_fits(tmp_path):
    check_memory(1000, 3, 32, "d", limit_gb=1.0)  # 3 MB: fits
    with pytest.raises(UserError, match=r"d: 120,000 images need 18.1 GB as uint8 at 224x224x3, more than "
                                        r"dataset.memory_limit_gb=6.0; set dataset.image_size=129 or lower"):
        check_memory(120_000, 3, 224, "d", limit_gb=6.0, resizable=True)
    with pytest.raises(UserError, match="use fewer or smaller images"):
        check_memory(120_000, 3, 224, "d", limit_gb=6.0)
    with pytest.raises(UserError, match="dataset.path: not set"):
        existing_path("path", "???")
    with pytest.raises(UserError, match="no such file"):
        existing_path("path", tmp_path / "x.npz", is_file=True)
