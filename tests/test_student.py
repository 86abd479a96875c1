"Teacher-copy students learn for every prediction type (eq. (S) of nbs/07_student.ipynb)."
import sys
from pathlib import Path

import pytest
import torch

from boot_nb.sampling import ddim_sample, one_step_sample
from boot_nb.teachers import load_teacher
from boot_nb.train import distill

sys.path.insert(0, str(Path(__file__).parents[1] / 'benchmarks'))
from quality import shipped_digits_eps  # the shipped v-prediction UNet as an exact epsilon-prediction network

TEACHERS = {'v, cosine (shipped)': lambda: load_teacher('digits'), 'epsilon, linear': shipped_digits_eps,
            'epsilon, squaredcos_cap_v2': lambda: shipped_digits_eps('squaredcos_cap_v2')}


@pytest.mark.parametrize('name', TEACHERS)
def test_teacher_copy_learns(name, tmp_path):
    "After 150 short steps with distill's defaults (t_max included) one student step beats 2 DDIM steps of the teacher."
    torch.set_num_threads(1)
    teacher = TEACHERS[name]()
    eps = torch.randn(64, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = ddim_sample(teacher, eps, 20)
        dist = lambda x: (x - ref).flatten(1).norm(dim=1).mean().item()
        ddim2 = dist(ddim_sample(teacher, eps, 2))
    student = distill(teacher, steps=150, batch_size=16, lr=1e-3, out_dir=tmp_path, sample_every=0,
                      checkpoint_every=150, progress=False)
    with torch.no_grad(): d = dist(one_step_sample(student, eps))
    assert d < ddim2, (d, ddim2)


def test_copy_of_a_teacher_with_a_schedule_boot_nb_does_not_know(tmp_path):
    """A diffusers copy on a duck-typed schedule (with the network's `timestep`) distils, saves, and loads back sampling
    the same."""
    import diffusers
    from boot_nb.schedules import DiscreteSchedule
    from boot_nb.student_files import load_student
    from boot_nb.teachers import DiffusersTeacher
    torch.set_num_threads(1)
    ddpm = DiscreteSchedule.from_scheduler(diffusers.DDPMScheduler())

    class Custom:      # not a boot_nb class: only what the teacher contract and a diffusers network need
        def alpha(self, t): return ddpm.alpha(t)
        def sigma(self, t): return ddpm.sigma(t)
        def lam(self, t): return ddpm.lam(t)
        def timestep(self, t): return ddpm.timestep(t)

    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32),
                                 layers_per_block=1, norm_num_groups=8, down_block_types=('DownBlock2D', 'DownBlock2D'),
                                 up_block_types=('UpBlock2D', 'UpBlock2D'))
    teacher = DiffusersTeacher(unet, Custom(), 'epsilon')
    student = distill(teacher, steps=4, batch_size=4, out_dir=tmp_path, sample_every=0, checkpoint_every=2,
                      progress=False)
    loaded = load_student(tmp_path / 'student')
    assert type(loaded.schedule).__name__ == 'TabulatedSchedule'
    eps = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([student.t_min, 0.1, 0.3, 0.5, 0.6, student.t_max, student.t_max, 0.05])
    with torch.no_grad():
        assert (one_step_sample(loaded, eps) - one_step_sample(student, eps)).abs().max() < 1e-6
        # between the table's nodes (1/2048 apart): interpolated
        assert (loaded(eps, t) - student(eps, t)).abs().max() < 1e-4


def test_a_bf16_step_keeps_the_students_time_embedding_in_float32(tmp_path):
    """Under bf16 autocast (a real training step) the student UNet's timestep MLP runs in float32, its convolutions in
    bf16."""
    from boot_nb.teachers import load_teacher
    from boot_nb.train import Distiller
    d = Distiller(load_teacher('digits'), batch_size=2, mixed_precision='bf16', out_dir=tmp_path, progress=False,
                  sample_every=0)
    net, seen = d.accelerator.unwrap_model(d.student).net, []
    net.time_embedding.register_forward_hook(lambda m, i, o: seen.append(('time', i[0].dtype, o.dtype)))
    net.conv_in.register_forward_hook(lambda m, i, o: seen.append(('conv', o.dtype)))
    assert torch.isfinite(d.train_step(0)).all()
    assert {s for s in seen if s[0] == 'time'} == {('time', torch.float32, torch.float32)}
    assert {s for s in seen if s[0] == 'conv'} == {('conv', torch.bfloat16)}


def test_training_on_with_the_returned_copy_keeps_its_t_max_and_rate(tmp_path):
    """distill(teacher, student_it_returned, resume=True): the copy of an epsilon teacher keeps the t_max and learning
    rate of a copy (0.6746 and 1e-4, not the 1 and 1e-3 of a student of its own), so the run resumes (quality.py's
    budget curve does this)."""
    from boot_nb.train import Distiller, checkpoints
    torch.set_num_threads(1)
    teacher = shipped_digits_eps()
    run = dict(batch_size=2, out_dir=tmp_path, sample_every=0, diagnose_every=0, progress=False,
               lr_schedule='constant')
    student = distill(teacher, steps=1, checkpoint_every=1, **run)
    assert student.t_max < 1
    d = Distiller(teacher, student, steps=2, **run)
    assert (d.config.t_max, d.lr) == (student.t_max, 1e-4)
    distill(teacher, student, steps=2, checkpoint_every=1, resume=True, **run)
    assert [s for s, _ in checkpoints(tmp_path)][-1] == 2
