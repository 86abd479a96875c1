"""Settings that make no sense are refused in one line before any work (issue: a new user's first hour)."""
import subprocess, sys

import pytest
import torch

from boot_nb.train import DistillConfig, distill

torch.set_num_threads(1)


@pytest.mark.parametrize('delta', [0., 1., 2., -0.1])
def test_delta_is_a_step_in_time(delta):
    with pytest.raises(ValueError, match=r'`delta` must be in \(0, 1\)'): DistillConfig(delta=delta)


@pytest.mark.skipif(torch.cuda.is_available(), reason='fp16 is refused only where there is no CUDA GPU')
def test_fp16_on_a_cpu_is_refused(tmp_path):
    with pytest.raises(ValueError, match="'fp16' needs a CUDA GPU"):
        distill('digits', steps=1, batch_size=2, out_dir=tmp_path / 'o', mixed_precision='fp16', progress=False)


def test_unwritable_out_dir_is_refused_before_the_teacher_loads(tmp_path):
    with pytest.raises(ValueError, match='cannot be written'):
        distill('no-such-teacher', out_dir='/proc/boot_nb_run/x')              # a read-only place, even for root


def test_distill_takes_a_teacher_name(tmp_path):
    student = distill('digits', steps=1, batch_size=2, out_dir=tmp_path / 'o', sample_every=0, progress=False)
    assert tuple(student.sample_shape) == (1, 16, 16) and (tmp_path / 'o' / 'student' / 'model_index.json').exists()


@pytest.mark.parametrize('arg', ['prompts.txt', 'some/dir/prompts'])
def test_missing_prompt_file_is_an_error_not_a_prompt(tmp_path, arg):
    r = subprocess.run([sys.executable, '-m', 'boot_nb.cli', 'distill', '--teacher', 'digits-text', '--prompts', arg, '--out',
                        str(tmp_path / 'o'), '--steps', '1'], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert r.returncode == 2 and 'no such file' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / 'o').exists()
