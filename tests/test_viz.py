"Explorers of boot_nb.viz: what their callbacks compute and draw, and that their widgets call them."
import numpy as np
import pytest
import torch

from boot_nb.exact import GaussianMixtureTeacher, dataset_teacher, digits
from boot_nb.losses import gaussian_signal
from boot_nb.sampling import ddim_sample, one_step_sample
from boot_nb.plots import as_images, image_grid
from boot_nb.viz import (_nearest, draw_guided, draw_nfe, draw_signal_paths, guidance_explorer, guided_samples,
                         nfe_explorer, nfe_samples, signal_path_explorer, signal_paths)

MU, STD = torch.tensor([[1.5, -0.5]]), 0.6


class ExactStudent(torch.nn.Module):
    "The Gaussian's exact signal y_t in closed form, as a student with a training range."
    t_min, t_max = 0.01, 0.9
    def __init__(self, teacher):
        super().__init__()
        self.schedule = teacher.schedule
    def forward(self, eps, t, cond=None): return gaussian_signal(MU, STD, self.schedule, eps, t).float()


@pytest.fixture(scope='module')
def gauss():
    teacher = GaussianMixtureTeacher(MU, std=STD)
    return teacher, ExactStudent(teacher), torch.randn(5, 2, generator=torch.Generator().manual_seed(0))


def test_signal_paths_compute_the_path(gauss):
    teacher, student, noise = gauss
    p = signal_paths(teacher, noise, student, steps=40)
    sch, ts = teacher.schedule, p['t']
    # the grid ends at the student's t_min
    assert len(ts) == 41 and ts[0] == 1 and abs(ts[-1] - student.t_min) < 1e-7
    for i in [5, 20, 40]:
        a, s = sch.alpha(ts[i]), sch.sigma(ts[i])
        torch.testing.assert_close(p['x'][i], a * p['y'][i] + s * noise, atol=1e-5, rtol=1e-5)          # eq. (2)
        torch.testing.assert_close(p['f'][i], teacher(p['x'][i], ts[i].expand(5)))
        # the student is asked inside its range only
        torch.testing.assert_close(p['student'][i], student(noise, ts[i].clamp(student.t_min, student.t_max).expand(5)))
    # the exact student and the teacher's signal path agree up to DDIM's error; at alpha = 0 the signal is its limit
    # f(eps, 1)
    assert (p['student'][30] - p['y'][30]).abs().max() < 0.05
    assert sch.alpha(ts[0]) == 0
    torch.testing.assert_close(p['y'][0], p['f'][0], atol=0, rtol=0)


def test_draw_signal_paths_2d_draws_the_points_at_that_time(gauss):
    teacher, student, noise = gauss
    p = signal_paths(teacher, noise, student, steps=20)
    fig = draw_signal_paths(p, [0.5, 0.])
    for ax, t in zip(fig.axes, [0.5, 0.]):
        i = _nearest(p['t'], t)
        assert ax.get_title() == f't = {p["t"][i]:.3f}'
        drawn = [c.get_offsets() for c in ax.collections]
        for key, pts in zip(['x', 'y', 'f', 'student'], drawn):
            np.testing.assert_allclose(pts, p[key][i].numpy(), rtol=1e-6, err_msg=key)
        assert len(ax.lines) == len(noise)           # one signal path per noise
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][-1].startswith(r'$\mathbf{y}_\theta')


def test_draw_signal_paths_images_draws_the_rows():
    x, _ = digits(n=16)
    teacher = dataset_teacher(x)
    noise = torch.randn(3, *teacher.sample_shape, generator=torch.Generator().manual_seed(1))
    p = signal_paths(teacher, noise, steps=5)
    assert p['student'] is None
    fig = draw_signal_paths(p, [0.4], teacher=teacher, n_images=3)
    i = _nearest(p['t'], 0.4)
    want = torch.cat([image_grid(as_images(p[k][i], teacher), nrow=3) for k in ['x', 'y', 'f']]).numpy()
    np.testing.assert_allclose(fig.axes[0].get_images()[0].get_array(), want)


def test_signal_path_explorer_slider_redraws(gauss):
    teacher, student, noise = gauss
    p = signal_paths(teacher, noise, student, steps=10)
    w = signal_path_explorer(p)
    slider = w.children[0]
    assert [v for _, v in slider.options] == p['t'].tolist()
    slider.value = slider.options[-1][1]
    assert w.result.axes[0].get_title() == f't = {p["t"][-1]:.3f}'
    np.testing.assert_allclose(w.result.axes[0].collections[-1].get_offsets(), p['student'][-1].numpy(), rtol=1e-6)


def test_nfe_samples_and_figure(gauss):
    teacher, student, _ = gauss
    noise = torch.randn(200, 2, generator=torch.Generator().manual_seed(2))
    s = nfe_samples(teacher, student, noise, ks=(1, 2, 4, 8), ref_steps=50)
    torch.testing.assert_close(s['ddim'][4], ddim_sample(teacher, noise, 4))
    torch.testing.assert_close(s['student'], one_step_sample(student, noise))
    rms = lambda a, b: (a - b).pow(2).mean(1).sqrt().mean().item()
    assert s['error'][4] == pytest.approx(rms(s['ddim'][4], s['ref']))
    assert s['student_error'] == pytest.approx(rms(s['student'], s['ref']))
    errs = list(s['error'].values())
    assert all(a > b for a, b in zip(errs[:-1], errs[1:]))              # DDIM converges to its reference
    fig = draw_nfe(s, 4)
    a, b, c = fig.axes
    assert a.get_title().startswith('teacher: DDIM, 4 steps (4 NFE)') and f'{s["error"][4]:.3f}' in a.get_title()
    np.testing.assert_allclose(a.collections[0].get_offsets(), s['ddim'][4].numpy(), rtol=1e-6)
    np.testing.assert_allclose(b.collections[0].get_offsets(), s['student'].numpy(), rtol=1e-6)
    curve, star, ring = c.lines
    np.testing.assert_allclose(curve.get_xydata(), [[k, e] for k, e in s['error'].items()])
    np.testing.assert_allclose(star.get_xydata(), [[1, s['student_error']]])
    np.testing.assert_allclose(ring.get_xydata(), [[4, s['error'][4]]])
    w = nfe_explorer(s)
    w.children[0].value = 8
    assert w.result.axes[0].get_title().startswith('teacher: DDIM, 8 steps')


@pytest.fixture(scope='module')
def text():
    from boot_nb.teachers import load_teacher
    from boot_nb.digits import load_digit_classifier
    return load_teacher('digits-text'), load_digit_classifier()


def test_guided_samples_are_the_guided_teacher(text):
    teacher, _ = text
    noise = torch.randn(4, *teacher.sample_shape, generator=torch.Generator().manual_seed(3))
    prompt = 'a handwritten digit seven'
    # w = 1 is the conditional teacher, w = 0 the unconditional one
    torch.testing.assert_close(guided_samples(teacher, prompt, 1., noise, steps=2),
                               ddim_sample(teacher, noise, 2, [prompt] * 4), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(guided_samples(teacher, prompt, 0., noise, steps=2), ddim_sample(teacher, noise, 2),
                               atol=1e-4, rtol=1e-4)


def test_draw_guided_and_explorer(text):
    from boot_nb.digits import classify
    teacher, classifier = text
    noise = torch.randn(4, *teacher.sample_shape, generator=torch.Generator().manual_seed(4))
    prompt = 'the number three'
    fig = draw_guided(teacher, prompt, noise, (0., 4.), steps=3, classifier=classifier)
    assert fig._suptitle.get_text() == repr(prompt)
    for ax, w in zip(fig.axes, (0., 4.)):
        x = guided_samples(teacher, prompt, w, noise, steps=3)
        np.testing.assert_allclose(ax.get_images()[0].get_array(), image_grid(as_images(x, teacher)).numpy(), atol=1e-5)
        labels, _ = classify(x, classifier)
        top = int(torch.bincount(labels, minlength=10).argmax())
        assert ax.get_title() == f'w = {w:g}: {(labels == top).float().mean().item():.0%} look like {top}'
    w = guidance_explorer(teacher, noise, [prompt, 'the number one'], steps=2)
    box, slider = w.children[:2]
    box.value, slider.value = 'the number one', 2.5
    assert (w.result._suptitle.get_text() == repr('the number one')
            and w.result.axes[0].get_title().startswith('w = 2.5:'))
