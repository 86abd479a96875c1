"""The LPIPS distance and `distill(loss='lpips')` on a backbone file made offline: torchvision's AlexNet with random
weights, saved as the file LPIPS would download (the real weights need the internet; the code path is the same)."""
import json, pickle
from pathlib import Path
import pytest
import torch
import torchvision
from boot_nb.losses import LPIPS_BACKBONES, LPIPSDistance, loss_distance
from boot_nb.teachers import load_teacher
from boot_nb.train import distill


@pytest.fixture(scope='module')
def alex(tmp_path_factory):
    """A torchvision AlexNet state dict with random weights, under the name LPIPS's 'alex' backbone has in the torch hub
    cache."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('hub') / LPIPS_BACKBONES['alex']
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return path


def images(n=4, seed=0, shape=(3, 32, 32)):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_zero_for_identical_images_positive_otherwise(alex):
    d = LPIPSDistance('alex', weights=alex)
    x, y = images(seed=0), images(seed=1)
    assert d(x, x).shape == (4,)
    assert d(x, x).abs().max() < 1e-6
    assert (d(x, y) > 1e-4).all()
    assert (d(x, x + 0.05 * images(seed=2)) < d(x, y)).all()       # a small change is closer than another image
    grey = images(shape=(1, 16, 16))                                  # the digits teachers: grey, upsampled to 64 x 64
    assert d(grey, grey).abs().max() < 1e-6 and (d(grey, images(seed=3, shape=(1, 16, 16))) > 0).all()


def test_gradients_flow_to_the_images_not_the_network(alex):
    d = LPIPSDistance('alex', weights=alex)
    a = images(seed=0).requires_grad_()
    d(a, images(seed=1)).sum().backward()
    assert torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in d.parameters())          # the LPIPS network is frozen


def test_latents_are_compared_through_the_decoder(alex):
    "A latent teacher's LPIPS decodes both sides with the VAE (Stable Diffusion's case); gradients reach the latents."
    from diffusers import AutoencoderKL
    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=('DownEncoderBlock2D',) * 2,
                        up_block_types=('UpDecoderBlock2D',) * 2, layers_per_block=1, latent_channels=4,
                        norm_num_groups=8).eval()
    teacher = type('Latent', (), {'decode': lambda self, z: vae.decode(z).sample})()
    d = loss_distance('lpips', teacher, 'alex', alex)
    z = torch.randn(2, 4, 8, 8, requires_grad=True)
    assert d.images(z).shape == (2, 3, 64, 64)                        # 8 x 8 latents -> 16 x 16 images -> upsampled
    assert d(z, z).abs().max() < 1e-6
    d(z, torch.randn(2, 4, 8, 8)).sum().backward()
    assert z.grad.abs().sum() > 0


def test_missing_file_names_it(alex, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"alexnet-owt-7be5be79\.pth.*nope\.pth"):
        LPIPSDistance('alex', weights=tmp_path / 'nope.pth')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))                   # an empty torch hub cache
    with pytest.raises(FileNotFoundError, match=r"torch hub cache.*checkpoints.*alexnet-owt-7be5be79\.pth"):
        LPIPSDistance('alex')
    with pytest.raises(FileNotFoundError, match='nope.pth'):        # distill fails before any step
        distill(load_teacher('digits'), steps=1, batch_size=2, loss='lpips', lpips_weights=tmp_path / 'nope.pth',
                out_dir=tmp_path / 'run', progress=False, sample_every=0)


class _Payload:
    def __reduce__(self): return (Path.touch, (Path(self.marker),))


def test_backbone_file_is_not_unpickled(tmp_path):
    "A crafted backbone file is refused by torch.load(weights_only=True): nothing in it runs."
    p = _Payload(); p.marker = str(tmp_path / 'ran')
    bad = tmp_path / LPIPS_BACKBONES['alex']
    torch.save({'features.0.weight': p}, bad)
    with pytest.raises(pickle.UnpicklingError):
        LPIPSDistance('alex', weights=bad)
    assert not (tmp_path / 'ran').exists()
    torch.save({'classifier.weight': torch.zeros(1)}, bad)             # a weights file of something else
    with pytest.raises(ValueError, match='features'):
        LPIPSDistance('alex', weights=bad)


def test_distill_uses_lpips(alex, tmp_path, monkeypatch):
    """distill(loss='lpips') trains with the LPIPS distance: every loss term goes through it, and its losses are not
    l2's."""
    calls = []
    forward = LPIPSDistance.forward
    monkeypatch.setattr(LPIPSDistance, 'forward', lambda self, a, b: calls.append(a.shape) or forward(self, a, b))
    teacher = load_teacher('digits')
    kw = dict(steps=3, batch_size=4, seed=0, log_every=1, sample_every=0, progress=False, checkpoint_every=3)
    distill(teacher, loss='lpips', lpips_weights=alex, out_dir=tmp_path / 'lpips', **kw)
    n = len(calls)
    assert n >= 3 * 2                   # the bootstrapping and the boundary term of every step
    distill(teacher, loss='l2', out_dir=tmp_path / 'l2', **kw)
    assert len(calls) == n              # the l2 run does not touch LPIPS
    log = lambda name: [json.loads(l) for l in (tmp_path / name / 'log.jsonl').read_text().splitlines()]
    lp, l2 = log('lpips'), log('l2')
    assert [r['step'] for r in lp] == [1, 2, 3]
    # same seed, same student, same draws: only the distance differs (bc starts at 0: a copy is exact at t_max)
    for a, b in zip(lp, l2):
        assert abs(a['bs'] - b['bs']) > 1e-3 * max(abs(a['bs']), abs(b['bs']))
    assert all(torch.isfinite(torch.tensor([r['loss'], r['bs'], r['bc']])).all() for r in lp)
