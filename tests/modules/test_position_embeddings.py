import numpy as np
import pytest

from hf_vidtok.modules import sincos_1d, sincos_2d, sincos_3d


def test_sincos_1d_reference_values():
    """Sanity values from larp.md §1.4: sincos_1d(768, [1]) channels 0, 1, 383, 384, 385."""
    t = sincos_1d(768, [1])
    np.testing.assert_allclose(t[0, [0, 1, 383, 384, 385]], [0.841471, 0.828431, 1.02428e-4, 0.540302, 0.560091], rtol=1e-5)
    assert t.dtype == np.float64 and t.shape == (1, 768)


def test_sincos_2d_first_half_encodes_column():
    t = sincos_2d(8, 3, 5)  # 3 rows, 5 columns, row-major
    assert t.shape == (15, 8)
    rows, cols = np.divmod(np.arange(15), 5)
    np.testing.assert_allclose(t[:, :4], sincos_1d(4, cols))
    np.testing.assert_allclose(t[:, 4:], sincos_1d(4, rows))


def test_sincos_3d_adds_full_width_temporal_table():
    t = sincos_3d(8, 2, 3)  # h = w = 2, t = 3 -> (t, h, w) order
    assert t.shape == (12, 8)
    for ti in range(3):
        np.testing.assert_allclose(t[ti * 4 : (ti + 1) * 4], sincos_2d(8, 2) + sincos_1d(8, [ti]))


def test_odd_dim_rejected():
    with pytest.raises(ValueError, match="dim"):
        sincos_1d(7, [0])
    with pytest.raises(ValueError, match="dim"):
        sincos_2d(6, 2)
