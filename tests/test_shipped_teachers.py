"""The digits teachers that ship with boot_nb pass the classifier thresholds of issue 3 (issue 24 for `digits-rgb`),
loaded by name and sampled with DDIM."""
import pytest
import torch
from boot_nb.cli import main
from boot_nb.exact import digits
from boot_nb.sampling import one_step_sample
from boot_nb.student_files import load_student
from boot_nb.teachers import SHIPPED_TEACHERS, load_teacher, shipped_teachers
from boot_nb.teacher_training import LUMA, colour_digits, cifar10_scheduler, digit_luminance, evaluate_teacher

N_UNCOND, N_TEXT = 200, 60   # samples per teacher: under a minute each on a busy 2-core CPU
N_RGB, RGB_STEPS = 40, 10    # digits-rgb: DDIM-10 on 40 samples, a few seconds


def test_shipped_teachers_are_small():
    sizes = {p.relative_to(SHIPPED_TEACHERS): p.stat().st_size for p in SHIPPED_TEACHERS.rglob('*.safetensors')}
    assert {p.parts[0] for p in sizes} == {'digits', 'digits-text', 'digits-rgb'} == set(shipped_teachers())
    assert sum(sizes.values()) <= 12 * 2**20, sizes
    assert sum(v for p, v in sizes.items() if p.parts[0] == 'digits-rgb') <= 3 * 2**20, sizes


def test_digits_teacher_samples_are_digits():
    teacher = load_teacher('digits')
    assert teacher.prediction_type == 'v_prediction' and teacher.sample_shape == (1, 16, 16)
    x, _, scores = evaluate_teacher(teacher, n=N_UNCOND, seed=1234)
    assert x.shape == (N_UNCOND, 1, 16, 16)
    assert scores['confident'] >= 0.9, scores


def test_digits_text_teacher_draws_the_prompted_digit():
    teacher = load_teacher('digits-text')
    w = teacher.info['guidance_scale']
    x, labels, scores = evaluate_teacher(teacher, n=N_TEXT, guidance=w, seed=1234)
    assert scores['confident'] >= 0.9 and scores['correct'] >= 0.9, (w, scores)


def test_colour_digits_keep_the_digit_in_the_luminance():
    g = torch.Generator().manual_seed(1)
    x, y = digits(8)
    c = colour_digits(x, generator=g, min_contrast=0.5)
    assert c.shape == (len(x), 3, 8, 8) and c.min() >= -1 and c.max() <= 1
    # both ends, blank corner
    full = ((x == -1).flatten(1).sum(1) >= 3) & ((x == 1).flatten(1).sum(1) >= 3) & (x[:, 0, 0, 0] == -1)
    bg = c[full][..., 0, 0]                                                        # the corner: background colour
    fg = c[full].flatten(2).gather(2, x[full].flatten(2).argmax(2, keepdim=True).expand(-1, 3, 1))[..., 0]   # full ink
    contrast = (fg - bg) @ torch.tensor(LUMA)
    # every pair far enough apart in luminance
    assert full.sum() > 1000 and contrast.abs().min() >= 0.5 - 1e-5
    # ink brighter or darker than the ground
    assert (contrast > 0).float().mean().item() == pytest.approx(0.5, abs=0.1)
    assert (c - c.mean(1, keepdim=True)).abs().mean() > 0.1                         # the three channels differ
    torch.testing.assert_close(digit_luminance(c[full], size=8), x[full], atol=1e-5, rtol=0)
    assert digit_luminance(colour_digits(digits(32)[0][:4])).shape == (4, 1, 16, 16)


def test_digits_rgb_teacher_draws_coloured_digits():
    teacher = load_teacher('digits-rgb')
    assert teacher.sample_shape == (3, 32, 32) and teacher.prediction_type == 'epsilon' and teacher.clip_sample
    torch.testing.assert_close(teacher.schedule.alpha(torch.tensor([0.5])) ** 2,
                               cifar10_scheduler().alphas_cumprod[499:500])
    x, _, scores = evaluate_teacher(teacher, n=N_RGB, steps=RGB_STEPS, seed=1234)
    assert x.shape == (N_RGB, 3, 32, 32) and x.abs().max() <= 1 + 1e-4
    assert scores['confident'] >= 0.3, scores                        # a random network of this layout: 0; DDIM-50: 0.43
    assert (x - x.mean(1, keepdim=True)).abs().mean() > 0.1           # coloured, not grey
    assert x.mean((2, 3)).std(0).mean() > 0.1                         # and not all in one colour


def test_cli_distils_digits_rgb(tmp_path):
    """`boot-nb distill --teacher digits-rgb` works like `digits`: a student of the teacher's network that makes 3x32x32
    samples."""
    assert main(['distill', '--teacher', 'digits-rgb', '--out', str(tmp_path), '--steps', '2', '--batch-size', '4',
                 '--lr', '1e-3', '--sample-every', '2', '--eval-samples', '0', '--no-progress']) == 0
    student, teacher = load_student(tmp_path / 'student'), load_teacher('digits-rgb')
    assert student.net.state_dict().keys() == teacher.net.state_dict().keys()
    assert not all(torch.equal(v, teacher.net.state_dict()[k]) for k, v in student.net.state_dict().items())
    assert one_step_sample(student, torch.randn(2, 3, 32, 32)).shape == (2, 3, 32, 32)
    assert (tmp_path / 'samples' / 'step-00000002.png').exists()
