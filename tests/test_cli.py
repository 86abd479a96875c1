"""`boot-nb distill` end to end, as a user runs it: the console script, `python -m boot_nb.cli`, `accelerate launch`,
and two processes under `torchrun` (DistributedDataParallel on CPU with gloo)."""
import json, math, os, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch

from boot_nb.cli import main
from boot_nb.sampling import one_step_sample
from boot_nb.student import load_student
from boot_nb.train import checkpoints

TINY = ['--teacher', 'gmm2d', '--batch-size', '16', '--hidden', '16', '--depth', '1', '--checkpoint-every', '2',
        '--sample-every', '4', '--eval-samples', '64', '--no-progress', '--cpu']
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300, **kw)


def check_run(out, steps):
    assert sorted(p.name for p in out.iterdir()) == ['checkpoints', 'log.jsonl', 'quality.json', 'quality.md', 'samples', 'student']
    rows = json.loads((out / 'quality.json').read_text())['rows']
    student_row = next(r for r in rows if r['method'] == 'BOOT student, 1 step')
    assert len(rows) == 6 and all(math.isfinite(student_row[k]) for k in ('endpoint', 'mmd'))
    assert '| BOOT student, 1 step | 1 |' in (out / 'quality.md').read_text()
    assert [json.loads(l)['step'] for l in (out / 'log.jsonl').read_text().splitlines()][-1] == steps
    assert (out / 'samples' / f'step-{steps:08d}.png').stat().st_size > 5000
    student = load_student(out / 'student')
    assert student.t_min == 0.002 and student.sample_shape == (2,)
    assert torch.isfinite(one_step_sample(student, torch.randn(8, 2))).all()


def test_console_script_then_resume_with_python_m(tmp_path):
    script = shutil.which('boot-nb') or pytest.skip('the boot-nb console script is not installed (pip install -e .)')
    r = run([script, 'distill', '--out', str(tmp_path), '--steps', '4', *TINY])
    assert r.returncode == 0, r.stderr
    assert 'wrote the student to' in r.stdout
    check_run(tmp_path, 4)
    r = run([sys.executable, '-m', 'boot_nb.cli', 'distill', '--out', str(tmp_path), '--steps', '8', '--resume', *TINY])
    assert r.returncode == 0, r.stderr
    check_run(tmp_path, 8)
    assert [s for s, _ in checkpoints(tmp_path)] == [6, 8]


@pytest.mark.parametrize('args, message', [
    (['--t-min', '0.5', '--t-max', '0.5', *TINY], 'Need 0 <= t_min < t_max <= 1'),
    (['--labels', '1', *TINY], 'unconditional'),
    (['--teacher', './no/such/folder'], 'No such folder'),
    ([*TINY, '--eval-samples', '1'], 'at least 2'),
])
def test_bad_arguments_exit_with_a_message(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as e: main(['distill', '--out', str(tmp_path), *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'boot-nb distill: error: ' in err and message in err, err


def test_accelerate_launch(tmp_path):
    launch = shutil.which('accelerate') or pytest.skip('accelerate is not installed')
    r = run([launch, 'launch', '--cpu', '--num_processes', '1', '--num_machines', '1', '--mixed_precision', 'no',
             '--dynamo_backend', 'no', '-m', 'boot_nb.cli', 'distill', '--out', str(tmp_path), '--steps', '4', *TINY])
    assert r.returncode == 0, r.stderr
    check_run(tmp_path, 4)


def test_two_processes(tmp_path):
    torchrun = shutil.which('torchrun') or pytest.skip('torchrun is not installed')
    r = run([torchrun, '--nproc_per_node', '2', '-m', 'boot_nb.cli', 'distill', '--out', str(tmp_path), '--steps', '4', *TINY])
    assert r.returncode == 0, r.stderr
    check_run(tmp_path, 4)
    assert r.stdout.count('wrote the student to') == 1                       # the main process reports
    assert sorted(p.name for p in checkpoints(tmp_path)[-1][1].iterdir()) == ['optimizer.bin', 'rng-0.safetensors', 'rng-1.safetensors',
                                                                                'state.json', 'student']


def test_readme_command_on_the_shipped_digits_teacher(tmp_path):
    "The README's main command, shortened: a copy of the shipped UNet, its grid, and a quality table with the digit FD."
    assert main(['distill', '--teacher', 'digits', '--out', str(tmp_path), '--steps', '4', '--batch-size', '4', '--lr', '1e-3',
                 '--checkpoint-every', '4', '--sample-every', '4', '--eval-samples', '16', '--no-progress']) == 0
    assert (tmp_path / 'student' / 'net' / 'diffusion_pytorch_model.safetensors').exists()
    assert (tmp_path / 'samples' / 'step-00000004.png').stat().st_size > 5000
    rows = json.loads((tmp_path / 'quality.json').read_text())['rows']
    assert all(math.isfinite(r['fd']) and math.isfinite(r['endpoint']) for r in rows)
    assert (tmp_path / 'quality.md').read_text().startswith('| method | NFE | endpoint | fd | mmd |')
    student = load_student(tmp_path / 'student')
    assert one_step_sample(student, torch.randn(2, 1, 16, 16)).shape == (2, 1, 16, 16)
