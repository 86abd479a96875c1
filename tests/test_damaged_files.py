"""Damaged files from a killed run: a truncated last line of log.jsonl is dropped with a warning on resume (the log is
rewritten to a new file and renamed, never in place), and only folders named step-NNNNNNNN are checkpoints."""
import json

import pytest
import torch

from boot_nb.exact import GaussianMixtureTeacher
from boot_nb.student import MLPStudent
from boot_nb.train import checkpoints, distill

torch.set_num_threads(1)
RUN = dict(batch_size=8, checkpoint_every=2, sample_every=0, log_every=1, progress=False)


def run(out, steps, **kw):
    torch.manual_seed(0)
    return distill(GaussianMixtureTeacher(torch.tensor([[2., 0], [-2, 0]]), std=0.2),
                   MLPStudent((2,), hidden=16, depth=1), out_dir=out, steps=steps, **RUN, **kw)


def test_truncated_log_line_is_dropped_on_resume(tmp_path):
    run(tmp_path, 4)
    log = tmp_path / 'log.jsonl'
    log.write_text(log.read_text() + '{"step": 5, "loss": 0.0')        # a kill in the middle of writing line 5
    with pytest.warns(UserWarning, match=r'log.jsonl: dropped 1 damaged line'): run(tmp_path, 6, resume=True)
    steps = [json.loads(l)['step'] for l in log.read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6] and not (tmp_path / 'log.jsonl.tmp').exists()


def test_only_step_folders_with_eight_digits_are_checkpoints(tmp_path):
    run(tmp_path, 2)
    for name in ['step-', 'step-99999999x', 'step-123', 'step-000000050']:
        (tmp_path / 'checkpoints' / name).mkdir()
    assert [s for s, _ in checkpoints(tmp_path)] == [2]


def test_a_second_run_on_the_same_folder_is_refused_at_once(tmp_path):
    """Two runs on one out_dir: the second stops in one line naming the process that holds it; a dead holder's lock is
    taken over."""
    import subprocess, sys, textwrap
    holder = subprocess.Popen([sys.executable, '-c', textwrap.dedent(f'''
        import time
        from boot_nb.checkpoints import run_lock
        with run_lock({str(tmp_path)!r}):
            print('locked', flush=True); time.sleep(60)''')], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(ValueError, match=rf'is in use by process {holder.pid} on .*: wait for that run to end'):
            run(tmp_path, 2)
        assert not (tmp_path / 'log.jsonl').exists() and not (tmp_path / 'checkpoints').exists()     # nothing touched
    finally: holder.kill(); holder.wait()
    run(tmp_path, 2)                                   # killed: the OS released its lock; the run takes it over
    assert [s for s, _ in checkpoints(tmp_path)] == [2] and (tmp_path / '.boot_nb.lock').read_text() == ''
