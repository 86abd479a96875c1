"""Settings that make no sense are refused in one line before any work (issue: a new user's first hour)."""
import subprocess, sys

import pytest
import torch

from boot_nb.config import SettingError, check_out_dir
from boot_nb.train import DistillConfig, distill

torch.set_num_threads(1)


@pytest.mark.parametrize('delta', [0., 1., 2., -0.1])
def test_delta_is_a_step_in_time(delta):
    with pytest.raises(ValueError, match=r'^delta= must be in \(0, 1\)'): DistillConfig(delta=delta)


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
    r = subprocess.run([sys.executable, '-m', 'boot_nb.cli', 'distill', '--teacher', 'digits-text', '--prompts', arg,
                        '--out', str(tmp_path / 'o'), '--steps', '1'], capture_output=True, text=True, cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 2 and 'no such file' in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / 'o').exists()


def test_help_of_distillconfig_documents_every_field():
    from dataclasses import fields
    text = DistillConfig.__doc__
    for f in fields(DistillConfig): assert f'- `{f.name}` (default {f.default!r}): {f.metadata["help"]}' in text


@pytest.mark.parametrize('name, value', [('lr', 'abc'), ('beta', True), ('t_max', [1.]), ('guidance', 'x')])
def test_a_number_of_the_wrong_type_is_one_line_naming_it(name, value):
    with pytest.raises(TypeError, match=f'^{name}= must be a number, got'): DistillConfig(**{name: value})


@pytest.mark.parametrize('name, value', [('lr', float('nan')), ('delta', float('inf')), ('t_min', float('nan'))])
def test_a_number_that_is_not_finite_is_one_line_naming_it(name, value):
    with pytest.raises(ValueError, match=f'^{name}= must be a finite number, got'): DistillConfig(**{name: value})


REFUSED = [(dict(steps=0), 'steps'), (dict(lr='abc'), 'lr'), (dict(t_min=0.5, t_max=0.5), 't_min'),
           (dict(guidance=2.), 'guidance'), (dict(labels=[1], prompts=['a']), 'labels'), (dict(solver='rk4'), 'solver')]

@pytest.mark.parametrize('settings, name', REFUSED, ids=[str(s) for s, _ in REFUSED])
def test_a_refused_setting_is_a_setting_error_that_names_it_as_a_keyword(settings, name):
    with pytest.raises(SettingError) as e: DistillConfig(**settings)
    assert isinstance(e.value, ValueError) and e.value.setting == name, e.value
    assert f'{name}=' in str(e.value) and '`' not in str(e.value) and '--' not in str(e.value), e.value


def test_settings_refused_later_are_setting_errors_too(tmp_path):
    from types import SimpleNamespace
    (tmp_path / 'file').write_text('')
    with pytest.raises(SettingError, match="^out_dir='.*file' is a file") as e:
        check_out_dir(DistillConfig(out_dir=str(tmp_path / 'file')))
    assert e.value.setting == 'out_dir'
    ddpm = SimpleNamespace(schedule=SimpleNamespace(num_train_timesteps=100), sample_shape=(2,))
    with pytest.raises(SettingError, match="^t_min= must be at least the teacher's first training timestep") as e:
        DistillConfig(t_min=0.005).resolve(ddpm, object(), 'cpu')
    assert e.value.setting == 't_min'


def test_cli_says_the_option(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'boot_nb.cli', 'distill', '--teacher', 'gmm2d', '--out', str(tmp_path),
                        '--lr', 'nan'],
                       capture_output=True, text=True)
    assert (r.returncode == 2
            and r.stderr.strip().splitlines()[-1].endswith('--lr must be a finite number, got nan.')), r.stderr


def test_noise_of_the_wrong_shape_for_a_student_is_one_line():
    from boot_nb.sampling import one_step_sample
    class Student:                                        # duck-typed: any callable with t_min and sample_shape
        t_min, sample_shape = 0.002, (1, 16, 16)
        def __call__(self, eps, t, cond=None): return eps
    with pytest.raises(ValueError,
                       match=r'noise has shape \(4, 3, 32, 32\) but the student makes samples of shape \(1, 16, 16\)'):
        one_step_sample(Student(), torch.zeros(4, 3, 32, 32))
    with pytest.raises(TypeError, match='noise must be a tensor'): one_step_sample(Student(), [[0.]])
    assert one_step_sample(Student(), torch.ones(2, 1, 16, 16)).shape == (2, 1, 16, 16)
