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
    student = distill(teacher, steps=150, batch_size=16, lr=1e-3, out_dir=tmp_path, sample_every=0, checkpoint_every=150,
                      progress=False)
    with torch.no_grad(): d = dist(one_step_sample(student, eps))
    assert d < ddim2, (d, ddim2)
