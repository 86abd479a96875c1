"Image metrics (FID, KID, CLIP score through torchmetrics) on tiny inputs, and their offline errors."
import importlib.util

import pytest
import torch
import torch.nn.functional as F

import boot_nb.metrics as M
import boot_nb.quality as Q
import boot_nb.teachers as T


def images(n, seed, shift=0.):
    "n smooth random colour images (n, 3, 16, 16) in [-1, 1], brightened by `shift`."
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 3, 4, 4, generator=g) * 2 - 1, size=(16, 16), mode='bilinear')
    return (x + shift).clamp(-1, 1)


def test_fid_kid_zero_on_identical_sets_and_growing_with_a_shift():
    real = images(200, 0)
    dist = M.ImageDistances(real, M.RandomFeatures(), kid_subset_size=100)
    same = dist(real)
    assert abs(same['fid']) < 1e-6
    shifted = [dist(images(200, 1, s)) for s in (0., 0.2, 0.5)]
    assert shifted[0]['fid'] > 0
    assert [r['fid'] for r in shifted] == sorted(r['fid'] for r in shifted)
    assert abs(same['kid']) < 0.05 * shifted[2]['kid'] and shifted[1]['kid'] < shifted[2]['kid']
    assert M.fid_kid(real, images(200, 1, 0.5), M.RandomFeatures(), kid_subset_size=100) == pytest.approx(shifted[2])


def test_frechet_distance_of_diagonal_gaussians():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(4, generator=g) + 0.1, torch.rand(4, generator=g) + 0.1
    x = torch.randn(100_000, 4, generator=g, dtype=torch.float64) * a.sqrt()
    y = torch.randn(100_000, 4, generator=g, dtype=torch.float64) * b.sqrt() + 0.5
    exact = 4 * 0.25 + ((a.sqrt() - b.sqrt()) ** 2).sum().item()
    assert M.frechet_distance(x, y) == pytest.approx(exact, abs=0.02)
    with pytest.raises(ValueError, match='Feature sizes differ'): M.frechet_distance(x, y[:, :3])


def test_inception_weights_offline_error_names_the_file(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=M.INCEPTION_FILE): M.inception_weights_file(tmp_path / 'missing.pth')
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))       # an empty cache
    monkeypatch.setattr(M, '_reachable', lambda url, timeout=3.: False)     # and no internet
    with pytest.raises(FileNotFoundError) as e: M.fid_kid(images(4, 0), images(4, 1))
    assert M.INCEPTION_FILE in str(e.value) and M.INCEPTION_URL in str(e.value) and 'inception_weights=' in str(e.value)
    with pytest.raises(FileNotFoundError, match=M.CIFAR10_FILE): M.cifar10_images()


@pytest.mark.skipif(importlib.util.find_spec('torch_fidelity') is not None, reason='torch-fidelity is installed')
def test_inception_without_torch_fidelity_says_what_to_install(tmp_path):
    path = tmp_path / M.INCEPTION_FILE
    path.write_bytes(b'')
    with pytest.raises(ImportError, match='pip install torch-fidelity'): M.inception_features(path)


def test_uint8_features_see_bytes():
    "Inception takes 0..255 bytes: [-1, 1] maps to [0, 255], 1-channel images are repeated to 3."
    seen = []
    class Spy(torch.nn.Module):
        def forward(self, x): seen.append(x); return x.float().flatten(1)[:, :2]
    f = M.ImageFeatures(Spy(), 2, uint8=True)
    f(torch.tensor([-1., 0., 1., 2.]).reshape(1, 1, 2, 2))
    assert seen[0].dtype == torch.uint8 and seen[0].shape == (1, 3, 2, 2)
    assert seen[0][0, 2].flatten().tolist() == [0, 128, 255, 255]


@pytest.fixture(scope='module')
def tiny_clip(tmp_path_factory):
    return M.save_tiny_clip(tmp_path_factory.mktemp('clip'))


def test_clip_score_matches_the_model(tiny_clip):
    from transformers import CLIPModel, CLIPProcessor
    x = images(5, 0).repeat(1, 1, 2, 2)                      # 32x32, the tiny CLIP's size
    prompts = ['a red cat', 'a dog', 'seven', 'a car on a road', 'x']
    score = M.clip_score(x, prompts, tiny_clip, batch_size=2)
    model, proc = CLIPModel.from_pretrained(tiny_clip), CLIPProcessor.from_pretrained(tiny_clip)
    inp = proc(text=prompts, images=list(((x + 1) * 127.5).round().to(torch.uint8)), return_tensors='pt', padding=True)
    with torch.no_grad(): out = model(**inp)
    assert score == pytest.approx(100 * F.cosine_similarity(out.image_embeds,
                                                            out.text_embeds).mean().clamp_min(0).item(), abs=1e-3)
    with pytest.raises(ValueError, match='one prompt per image'): M.clip_score(x, prompts[:3], tiny_clip)


def test_clip_offline_error_names_the_model(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(T, 'hub_reachable', lambda timeout=3.: False)
    with pytest.raises(OSError, match='(?s)clip-vit-base-patch16.*model_name_or_path='):
        M.clip_score(images(1, 0), ['a cat'])


def test_sample_batched_gives_every_chunk_its_conditions():
    "A single condition (a label, a prompt) holds for every chunk; per-sample ones are split with the noise."
    seen = []
    def sampler(x, c): seen.append(c); return x
    Q.sample_batched(sampler, torch.zeros(5, 2), torch.tensor([3]), batch_size=2)
    assert [c.tolist() for c in seen] == [[3, 3], [3, 3], [3]]
    seen.clear(); Q.sample_batched(sampler, torch.zeros(3, 2), 'a cat', batch_size=2)
    assert seen == [['a cat', 'a cat'], ['a cat']]
    seen.clear(); Q.sample_batched(sampler, torch.zeros(3, 2), ['a', 'b', 'c'], batch_size=2)
    assert seen == [['a', 'b'], ['c']]


def test_the_digit_classifier_takes_8x8_digits():
    """The sklearn digits at 8x8 are resized to the classifier's size (boot_nb.digits imports what it uses) and
    recognised."""
    from boot_nb.digits import load_digit_classifier
    from boot_nb.exact import digits
    x, y = digits(8, 300)
    model = load_digit_classifier()
    with torch.no_grad(): guess = model(model.prepare(x)).argmax(1)
    assert model.prepare(x).shape[-2:] == (model.config['size'],) * 2
    assert (guess == y).float().mean() > 0.9
