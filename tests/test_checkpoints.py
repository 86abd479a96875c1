"""Checkpoints: a teacher with a schedule boot_nb does not know distils, checkpoints, resumes and loads; a student that
cannot be saved fails before step 1; a run killed with SIGKILL (once, or at ten moments) resumes in a new process bit
for bit; the GradScaler state of an fp16 run is part of each checkpoint."""
import json, os, signal, subprocess, sys, time

import pytest
import torch
from safetensors.torch import load_file

from boot_nb.sampling import one_step_sample
from boot_nb.student_files import load_student
from boot_nb.train import checkpoints, distill
import boot_nb.config
import boot_nb.train

torch.set_num_threads(1)

# Run as a script (a real process to kill) and exec'd here (the uninterrupted run): the same teacher, student and
# settings.
SCRIPT = '''
import math, sys, time, torch
from boot_nb.exact import GaussianMixtureTeacher
from boot_nb.student import MLPStudent
from boot_nb.train import distill

class LogSNRLinear:
    "A schedule boot_nb does not know (duck-typed: alpha, sigma, lam): lambda falls linearly from 5 to -5."
    def lam(self, t): return 5 - 10 * t
    def alpha(self, t): return torch.sigmoid(2 * self.lam(t)).sqrt()
    def sigma(self, t): return torch.sigmoid(-2 * self.lam(t)).sqrt()

class DropoutMLP(MLPStudent):
    "An MLP student with dropout on its output: it draws from torch's global RNG, which a checkpoint must restore."
    def forward(self, eps, t, cond=None):
        return torch.nn.functional.dropout(super().forward(eps, t, cond), 0.1, self.training)

class Slow:
    "The teacher, `pause` seconds slower a call, so that a run can be killed between two checkpoints."
    def __init__(self, teacher, pause):
        self.teacher, self.pause, self.schedule, self.sample_shape = teacher, pause, teacher.schedule, (2,)
    def __call__(self, x, t, cond=None):
        time.sleep(self.pause)
        return self.teacher(x, t, cond)

def teacher():
    ring = torch.stack([torch.cos(torch.arange(4) * math.pi / 2), torch.sin(torch.arange(4) * math.pi / 2)], 1) * 2
    t = GaussianMixtureTeacher(ring, std=0.2)
    t.schedule = LogSNRLinear()
    return t

RUN = dict(steps=60, batch_size=16, checkpoint_every=20, sample_every=0, log_every=5, progress=False)

def run(out, pause=0., resume=False, **over):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return distill(Slow(teacher(), float(pause)), DropoutMLP((2,), hidden=16, depth=1), out_dir=out, resume=resume,
                   **{**RUN, **over})

if __name__ == '__main__':    # run.py OUT PAUSE fresh|resume [steps=N checkpoint_every=N ...]
    run(sys.argv[1], sys.argv[2], sys.argv[3] == 'resume',
        **{k: int(v) for k, v in (a.split('=') for a in sys.argv[4:])})
'''
ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}


@pytest.fixture(scope='module')
def script():
    ns = {'__name__': 'run_script'}
    exec(SCRIPT, ns)
    return ns


def weights(folder): return load_file(str(folder / 'student' / 'net.safetensors'))
def log(folder): return [{k: v for k, v in json.loads(l).items() if k != 'seconds'}
                         for l in (folder / 'log.jsonl').read_text().splitlines()]


def test_custom_schedule_distils_checkpoints_resumes_and_loads(tmp_path, script):
    # a rate that does not depend on `steps`: a run can be extended exactly
    run = {**script['RUN'], 'lr_schedule': 'constant'}
    new = lambda: script['MLPStudent']((2,), hidden=16, depth=1)
    torch.manual_seed(0); full = distill(script['teacher'](), new(), out_dir=tmp_path / 'full', **run)
    torch.manual_seed(0); distill(script['teacher'](), new(), out_dir=tmp_path / 'cut', **{**run, 'steps': 30})
    more = distill(script['teacher'](), new(), out_dir=tmp_path / 'cut', resume=True, **run)
    assert [s for s, _ in checkpoints(tmp_path / 'cut')] == [40, 60]
    for k, v in full.state_dict().items(): assert torch.equal(v, more.state_dict()[k]), k
    back = load_student(tmp_path / 'cut' / 'student')
    eps = torch.randn(256, 2)
    torch.testing.assert_close(one_step_sample(back, eps), one_step_sample(more, eps), rtol=0, atol=1e-6)
    assert repr(back.schedule).startswith('TabulatedSchedule(LogSNRLinear')
    ends = torch.tensor([back.t_min, back.t_max], dtype=torch.float64)
    for g in ['alpha', 'sigma', 'lam']:
        torch.testing.assert_close(getattr(back.schedule, g)(ends), getattr(script['LogSNRLinear'](), g)(ends),
                                   rtol=1e-14, atol=0)


class NoLam:
    "A schedule with alpha and sigma but no lam: the teacher runs, the student cannot be saved."
    def alpha(self, t): return torch.cos(t * torch.pi / 2)
    def sigma(self, t): return torch.sin(t * torch.pi / 2)


@pytest.mark.parametrize('case, message', [('schedule', 'Cannot save a NoLam'), ('config', 'would not be JSON')])
def test_student_that_cannot_be_saved_fails_before_step_one(tmp_path, script, case, message):
    teacher, student = script['teacher'](), script['MLPStudent']((2,), hidden=16, depth=1)
    if case == 'schedule': teacher.schedule = NoLam()
    else: student.config['extra'] = torch.zeros(1)
    with pytest.raises(ValueError, match=message) as info:
        distill(teacher, student, out_dir=tmp_path, **script['RUN'])
    assert 'before the first step' in str(info.value)
    assert not (tmp_path / 'log.jsonl').exists() and not checkpoints(tmp_path)


def test_checkpoint_of_an_older_boot_nb_gives_a_clear_error(tmp_path, script):
    distill(script['teacher'](), script['MLPStudent']((2,), hidden=16, depth=1), out_dir=tmp_path,
            **{**script['RUN'], 'steps': 20})
    last = checkpoints(tmp_path)[-1][1]
    # the layout before accelerate's save_state
    (last / 'state.json').unlink(); (last / 'state.pt').write_bytes(b'')
    with pytest.raises(ValueError, match='has no state.json: it was written by an older boot_nb'):
        distill(script['teacher'](), script['MLPStudent']((2,), hidden=16, depth=1), out_dir=tmp_path, resume=True,
                **script['RUN'])


def test_run_killed_after_a_checkpoint_resumes_in_a_new_process_bit_exact(tmp_path, script):
    (tmp_path / 'run.py').write_text(SCRIPT)
    out = tmp_path / 'cut'
    child = subprocess.Popen([sys.executable, str(tmp_path / 'run.py'), str(out), '0.02', 'fresh'], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while not checkpoints(out) and child.poll() is None and time.time() - t0 < 120: time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
    child.stderr.close()
    done = [s for s, _ in checkpoints(out)]
    assert done and done[-1] < 60 and not (out / 'student').exists()          # killed mid-run, after a checkpoint
    # a half-written checkpoint: ignored, then replaced
    half = out / 'checkpoints' / f'.tmp-step-{done[-1] + 20:08d}'
    half.mkdir(exist_ok=True); (half / 'optimizer.bin').write_bytes(b'half')
    r = subprocess.run([sys.executable, str(tmp_path / 'run.py'), str(out), '0', 'resume'], env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    script['run'](tmp_path / 'full')
    full, resumed = weights(tmp_path / 'full'), weights(out)
    assert full.keys() == resumed.keys()
    for k in full: assert torch.equal(full[k], resumed[k]), k
    assert log(out) == log(tmp_path / 'full') and [r['step'] for r in log(out)] == list(range(5, 61, 5))
    assert [s for s, _ in checkpoints(out)] == [40, 60] and not half.exists()


def kill_at(child, out, moment, pause):
    """SIGKILL `child` at `moment`: while a checkpoint is being written, just after a log line is written, or `pause` s
    into training."""
    log, tmp = out / 'log.jsonl', out / 'checkpoints'
    size = lambda: log.stat().st_size if log.exists() else -1
    before, t0 = size(), time.time()
    def saving(): return tmp.is_dir() and any(p.name.startswith('.tmp-step-') for p in tmp.iterdir())
    seen = {'save': saving, 'log': lambda: size() != before, 'later': lambda: size() != before}[moment]
    while not seen() and child.poll() is None and time.time() - t0 < 120: time.sleep(0.001)
    if moment == 'later': time.sleep(pause)
    child.send_signal(signal.SIGKILL)
    return child.wait()


def test_killed_at_ten_random_moments_the_run_ends_bit_exact(tmp_path, script):
    """Ten SIGKILLs (during checkpoint saves, after log writes, at random times), each followed by a resume: the same
    result."""
    import random
    rng, over = random.Random(0), ['steps=120', 'checkpoint_every=5']
    (tmp_path / 'run.py').write_text(SCRIPT)
    out, codes, resumed_from = tmp_path / 'cut', [], []
    for i in range(10):
        resumed_from.append(max([s for s, _ in checkpoints(out)], default=0))
        child = subprocess.Popen([sys.executable, str(tmp_path / 'run.py'), str(out), '0.01',
                                  'resume' if i else 'fresh', *over],
                                 env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        codes.append(kill_at(child, out, ('save', 'log', 'later')[i % 3], rng.uniform(0, 0.4)))
    assert codes == [-signal.SIGKILL] * 10, codes                   # every kill hit a running run
    r = subprocess.run([sys.executable, str(tmp_path / 'run.py'), str(out), '0', 'resume', *over], env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    script['run'](tmp_path / 'full', steps=120, checkpoint_every=5)
    full, cut = weights(tmp_path / 'full'), weights(out)
    assert full.keys() == cut.keys() and all(torch.equal(full[k], cut[k]) for k in full)
    assert log(out) == log(tmp_path / 'full') and [r['step'] for r in log(out)] == list(range(5, 121, 5))
    assert not list((out / 'checkpoints').glob('damaged-*')), 'a kill damaged a checkpoint'   # saves are atomic
    # the kills came after checkpoints, not only in start-up
    assert max(resumed_from) > 0, resumed_from


def reset_accelerate():
    "accelerate's state is global: one process keeps its first mixed precision unless the state is reset."
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def cpu_grad_scaler(monkeypatch):
    """accelerate makes a GradScaler for fp16 only on an accelerator; give a CPU one (scale doubling every 2 steps) to
    check its state."""
    import accelerate
    class ScalingAccelerator(accelerate.Accelerator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if self.mixed_precision == 'fp16':
                self.native_amp, self.scaler = True, torch.amp.GradScaler('cpu', init_scale=2.**10, growth_interval=2)
    monkeypatch.setattr(accelerate, 'Accelerator', ScalingAccelerator)
    # fp16 is refused on a CPU, where it would not run
    monkeypatch.setattr(boot_nb.config, 'resolved_precision', lambda c: c.mixed_precision)
    reset_accelerate()
    yield
    reset_accelerate()


def scaler_state(out, step):
    return torch.load(out / 'checkpoints' / f'step-{step:08d}' / 'scaler.pt', weights_only=True)


def test_fp16_grad_scaler_state_is_in_each_checkpoint_and_restored(tmp_path, script, cpu_grad_scaler):
    run = {**script['RUN'], 'steps': 6, 'checkpoint_every': 3, 'log_every': 1, 'mixed_precision': 'fp16',
           'lr_schedule': 'constant'}
    new = lambda: script['MLPStudent']((2,), hidden=16, depth=1)
    torch.manual_seed(0); full = distill(script['teacher'](), new(), out_dir=tmp_path / 'full', **run)
    torch.manual_seed(0); distill(script['teacher'](), new(), out_dir=tmp_path / 'cut', **{**run, 'steps': 3})
    resumed = distill(script['teacher'](), new(), out_dir=tmp_path / 'cut', resume=True, **run)
    assert scaler_state(tmp_path / 'full', 6)['scale'] == 2.**13          # the scale grew: there is state to lose
    assert scaler_state(tmp_path / 'cut', 6) == scaler_state(tmp_path / 'full', 6)
    for k, v in full.state_dict().items(): assert torch.equal(v, resumed.state_dict()[k]), k
    # a run checkpointed without fp16 resumes under fp16, with a fresh scaler
    reset_accelerate(); torch.manual_seed(0)
    distill(script['teacher'](), new(), out_dir=tmp_path / 'mixed', **{**run, 'steps': 3, 'mixed_precision': 'no'})
    reset_accelerate()
    distill(script['teacher'](), new(), out_dir=tmp_path / 'mixed', resume=True, **run)
    assert scaler_state(tmp_path / 'mixed', 6)['scale'] == 2.**11
