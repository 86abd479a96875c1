"benchmarks/boundary.py's colour measures: the part of an image that is global colour, and its gain from the noise."
import importlib.util, sys
from pathlib import Path

import torch
from boot_nb.student import make_student
from boot_nb.teachers import load_teacher

ROOT = Path(__file__).resolve().parents[1]


def _boundary():
    "benchmarks/boundary.py as a module (it imports benchmarks/quality.py as `quality`)."
    sys.path.insert(0, str(ROOT / 'benchmarks'))
    try:
        spec = importlib.util.spec_from_file_location('boundary', ROOT / 'benchmarks' / 'boundary.py')
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    finally: sys.path.remove(str(ROOT / 'benchmarks'))
    return mod


def test_colour_is_each_channels_mean_and_its_gain_the_slope_per_channel():
    b = _boundary()
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(256, 3, 8, 8, generator=g)
    c = b.colour(eps)
    torch.testing.assert_close(c.mean((-2, -1)), eps.mean((-2, -1)))
    assert (c.std((-2, -1)) < 1e-6).all()                        # one value per image and channel
    torch.testing.assert_close((eps - c).mean((-2, -1)), torch.zeros(256, 3), atol=1e-6, rtol=0)
    # a signal whose channel means are k times the noise's, plus structure with no mean: slope k per channel
    k = torch.tensor([2., 5., -3.]).view(1, 3, 1, 1)
    pattern = torch.randn(256, 3, 8, 8, generator=g); pattern = pattern - b.colour(pattern)
    assert abs(b.colour_gain(eps, k * b.colour(eps) + pattern + 0.7) - (2 + 5 - 3) / 3) < 1e-4
    assert abs(b.colour_gain(eps, pattern)) < 1e-4


def test_a_copys_colour_gain_is_its_conversions_skip_coefficient():
    "The measurement the boundary table's last column rests on (07_student, 'Colour: what a copy cannot make')."
    b, rgb = _boundary(), load_teacher('digits-rgb')
    eps = torch.randn(32, *rgb.sample_shape, generator=torch.Generator().manual_seed(0))
    for lo, hi in [(0.2591, 0.6746), (0.6746, 0.6746)]:
        st = make_student(rgb, None, t_min=0.002, t_max=hi, kind=None, guidance=None)
        st.predict_kwargs['convert_range'] = [lo, hi]
        with torch.no_grad(): gain = b.colour_gain(eps, st(eps, torch.full((32,), 0.002)))
        skip = 1 / rgb.schedule.alpha(torch.tensor(lo, dtype=torch.float64)).item()
        assert abs(gain - skip) < 0.02 * skip, (lo, gain, skip)
