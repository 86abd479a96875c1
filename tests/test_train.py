"""`distill` keeps its promises: exact resume, a clear stop on a non-finite loss with the last good checkpoint kept,
and bad arguments rejected before any training step."""
import copy, json, math, os, re, signal, subprocess, sys, time

import pytest
import torch
from torch import nn

from boot_nb.config import DistillConfig
from boot_nb.exact import GaussianMixtureTeacher
from boot_nb.sampling import one_step_sample
from boot_nb.schedules import DiscreteSchedule, linear_schedule
from boot_nb.student import MLPStudent
from boot_nb.student_files import load_student
from boot_nb.train import Distiller, checkpoints, distill

torch.set_num_threads(1)
RING = torch.stack([torch.cos(torch.arange(4) * math.pi / 2), torch.sin(torch.arange(4) * math.pi / 2)], 1) * 2
RUN = dict(steps=6, batch_size=16, checkpoint_every=3, sample_every=0, log_every=1, progress=False)


def ring(**kw): return GaussianMixtureTeacher(RING, std=0.2, **kw)
def small(seed=0, **kw):
    torch.manual_seed(seed)
    return MLPStudent((2,), hidden=16, depth=1, **kw)


class Faulty:
    "A teacher that behaves like `teacher` for `calls` calls, then raises `error` or returns NaN (error=None)."
    def __init__(self, teacher, calls, error=None):
        self.teacher, self.calls, self.error = teacher, calls, error
        self.schedule, self.sample_shape = teacher.schedule, teacher.sample_shape
    def __call__(self, x, t, cond=None):
        self.calls -= 1
        if self.calls >= 0: return self.teacher(x, t, cond)
        if self.error is not None: raise self.error
        return torch.full_like(x, float('nan'))


def weights(student): return {k: v.clone() for k, v in student.state_dict().items()}


class Counting:
    "A teacher that counts its calls."
    def __init__(self, teacher):
        self.teacher, self.calls, self.schedule, self.sample_shape = teacher, 0, teacher.schedule, teacher.sample_shape
    def __call__(self, x, t, cond=None): self.calls += 1; return self.teacher(x, t, cond)


def calls_per_step():
    """Teacher calls in one Heun step, as the loss makes them (the boundary target may share a call with the first
    evaluation)."""
    from boot_nb.losses import BOOTLoss
    teacher = Counting(ring())
    BOOTLoss()(small(), teacher, torch.randn(4, 2))
    return teacher.calls


# Teacher calls: 1 check before training, then those of each step.
CALLS_BEFORE_STEP = lambda k, per_step=calls_per_step(): 1 + per_step * (k - 1)


def test_interrupted_and_resumed_run_ends_bit_identical(tmp_path):
    full = weights(distill(ring(), small(), out_dir=tmp_path / 'full', **RUN))
    with pytest.raises(KeyboardInterrupt):   # killed during step 5, after the checkpoint at step 3
        distill(Faulty(ring(), CALLS_BEFORE_STEP(5), KeyboardInterrupt()), small(), out_dir=tmp_path / 'cut', **RUN)
    assert [s for s, _ in checkpoints(tmp_path / 'cut')] == [3]
    # A different initial student: the checkpoint, not the initialisation, must decide what happens next.
    resumed = weights(distill(ring(), small(seed=1), out_dir=tmp_path / 'cut', resume=True, **RUN))
    assert full.keys() == resumed.keys()
    for k in full: assert torch.equal(full[k], resumed[k]), k
    log = [json.loads(l)['step'] for l in (tmp_path / 'cut' / 'log.jsonl').read_text().splitlines()]
    assert log == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in checkpoints(tmp_path / 'cut')] == [3, 6]
    for k, v in load_student(tmp_path / 'cut' / 'student').state_dict().items(): assert torch.equal(v, full[k]), k


def test_resume_continues_up_to_steps_and_rejects_changed_settings(tmp_path):
    # a rate that does not depend on `steps`: a run can be extended exactly
    run = {**RUN, 'lr_schedule': 'constant'}
    full = weights(distill(ring(), small(), out_dir=tmp_path / 'full', **run))
    distill(ring(), small(), out_dir=tmp_path / 'two', **{**run, 'steps': 3})
    more = weights(distill(ring(), small(), out_dir=tmp_path / 'two', resume=True, **run))
    for k in full: assert torch.equal(full[k], more[k]), k
    with pytest.raises(ValueError, match='different settings'):
        distill(ring(), small(), out_dir=tmp_path / 'two', resume=True, **{**run, 'steps': 9, 'delta': 0.1})
    with pytest.raises(ValueError, match='resume=True'):
        distill(ring(), small(), out_dir=tmp_path / 'two', **RUN)


def test_t_density_reaches_the_loss_and_a_checkpoint_from_before_it_resumes(tmp_path):
    run = {**RUN, 'lr_schedule': 'constant'}
    assert Distiller(ring(), small(), DistillConfig(**run)).loss.bs.density == 'uniform'
    lam = distill(ring(), small(), out_dir=tmp_path / 'lam', **{**run, 't_density': 'lambda'})
    uni = distill(ring(), small(), out_dir=tmp_path / 'uni', **run)
    assert any(not torch.equal(a, b) for a, b in zip(lam.state_dict().values(), uni.state_dict().values()))
    # a checkpoint written before the setting existed records none: it resumes as the default, 'uniform'
    distill(ring(), small(), out_dir=tmp_path / 'old', **{**run, 'steps': 3})
    for _, folder in checkpoints(tmp_path / 'old'):
        state = json.loads((folder / 'state.json').read_text())
        del state['config']['t_density']
        (folder / 'state.json').write_text(json.dumps(state))
    more = distill(ring(), small(), out_dir=tmp_path / 'old', resume=True, **run)
    for a, b in zip(uni.state_dict().values(), more.state_dict().values()): assert torch.equal(a, b)
    with pytest.raises(ValueError, match="different settings.*'t_density': \\('uniform', 'lambda'\\)"):
        distill(ring(), small(), out_dir=tmp_path / 'old', resume=True, **{**run, 'steps': 9, 't_density': 'lambda'})

def test_bc_share_reaches_the_loss_and_changes_the_run_not_the_default(tmp_path):
    run = {**RUN, 'lr_schedule': 'constant'}
    assert Distiller(ring(), small(), DistillConfig(**run)).loss.bc_share == 1
    sizes, inner = [], ring()
    class Sizes:          # a teacher (not a boot_nb class) that records the batch size of each call
        schedule, sample_shape = inner.schedule, inner.sample_shape
        def __call__(self, x, t, cond=None): sizes.append(len(x)); return inner(x, t, cond)
    quarter = distill(Sizes(), small(), out_dir=tmp_path / 'quarter', **{**run, 'bc_share': 0.25})
    # the check's batch of 2, then each step's first call: its 16 noises at t and the boundary's 4 at t_max
    assert sizes[0] == 2 and sizes.count(16 + 4) == RUN['steps'] and 2 * 16 not in sizes
    full = distill(ring(), small(), out_dir=tmp_path / 'full', **run)
    same = distill(ring(), small(), out_dir=tmp_path / 'same', **{**run, 'bc_share': 1.})
    assert any(not torch.equal(a, b) for a, b in zip(quarter.state_dict().values(), full.state_dict().values()))
    for a, b in zip(full.state_dict().values(), same.state_dict().values()): assert torch.equal(a, b)
    with pytest.raises(ValueError, match='bc_share= must be in'): DistillConfig(bc_share=0)



def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path):
    nan_teacher = Faulty(ring(), CALLS_BEFORE_STEP(5) + 1)      # f_t of step 5 is fine, f_s is NaN
    with pytest.raises(FloatingPointError, match='Non-finite loss at step 5') as info:
        distill(nan_teacher, small(), out_dir=tmp_path, **{**RUN, 'checkpoint_every': 2})
    assert [s for s, _ in checkpoints(tmp_path)] == [2, 4]
    last = checkpoints(tmp_path)[-1][1]
    assert str(last) in str(info.value) and 'resume=True' in str(info.value)
    student = load_student(last / 'student')
    assert torch.isfinite(one_step_sample(student, torch.randn(8, 2))).all()
    assert not (tmp_path / 'student').exists()
    # and the run resumes from it once the cause is gone
    distill(ring(), small(), out_dir=tmp_path, resume=True, **{**RUN, 'checkpoint_every': 2})
    assert [s for s, _ in checkpoints(tmp_path)] == [4, 6]


class WrongShape(nn.Module):
    def __init__(self): super().__init__(); self.lin = nn.Linear(2, 3)
    def forward(self, eps, t, cond=None): return self.lin(eps)


class TextTeacher:
    "A stand-in text teacher (not a boot_nb class) that records the prompts it is called with."
    cond_kind = 'text'
    def __init__(self): self.gmm, self.conds = ring(), []; self.schedule, self.sample_shape = self.gmm.schedule, (2,)
    def __call__(self, x, t, cond=None):
        self.conds.append(list(cond))
        return self.gmm(x, t)


@pytest.mark.parametrize('teacher, student, kw, message', [
    (ring(), small(), dict(t_min=0.5, t_max=0.5), 't_min=0.5 must be below t_max=0.5.'),
    (ring(), small(), dict(t_min=0.6, t_max=0.4), 't_min=0.6 must be below t_max=0.4.'),
    (ring(), small(), dict(t_max=1.5), 't_max= must be in (0, 1], got 1.5.'),
    (ring(), small(), dict(delta=0.), 'delta= must be in (0, 1)'),
    (ring(), small(), dict(delta=-0.1), 'delta= must be in (0, 1)'),
    (ring(), small(), dict(steps=0), 'steps= must be an integer >= 1'),
    (ring(), small(), dict(batch_size=2.5), 'batch_size= must be an integer'),
    (ring(), small(), dict(lr=0.), 'lr= must be > 0'),
    (ring(), small(), dict(beta=-1.), 'beta= must be >= 0'),
    (ring(), small(), dict(solver='rk4'), "solver= must be 'heun' or 'ddim'"),
    (ring(), small(), dict(loss='l1'), "loss= must be 'l2' or 'lpips' or a callable"),
    (ring(), small(), dict(mixed_precision='fp8'), "mixed_precision= must be"),
    (ring(), small(), dict(checkpoint_every=0), 'checkpoint_every= must be'),
    (ring(), WrongShape(), {}, 'student returns shape (3,) per sample but the teacher makes samples of shape (2,)'),
    (ring(), nn.Linear(2, 2), {}, 'student failed'),
    (ring(), 'not a module', {}, '`student` must be an nn.Module'),
    (ring(), None, {}, 'no network to copy'),
    (ring(), small(), dict(prompts=['a cat']), 'unconditional'),
    (ring(), small(), dict(labels=[0, 1]), 'unconditional'),
    (ring(labels=[0, 0, 1, 1]), small(num_classes=2), dict(prompts=['a cat']), 'class labels: pass labels='),
    (ring(labels=[0, 0, 1, 1]), small(num_classes=2), dict(labels=[0, 7]), 'teacher failed on a test batch'),
    (ring(labels=[0, 0, 1, 1]), small(num_classes=2), dict(labels=[]), '`labels` is empty'),
    (ring(labels=[0, 0, 1, 1]), small(num_classes=2), dict(guidance=2.), 'guidance= needs a context set'),
    (ring(labels=[0, 0, 1, 1]), small(num_classes=2), dict(labels=[0], prompts=['a']), 'not both'),
    (TextTeacher(), small(), dict(labels=[0, 1]), 'takes text: pass prompts='),
    (ring(schedule=DiscreteSchedule(torch.linspace(0.99, 0.01, 100))), small(), dict(t_min=0.002),
     "t_min= must be at least the teacher's first training timestep, 1/100 = 0.01, got 0.002."),
])
def test_bad_arguments_fail_before_any_step(tmp_path, teacher, student, kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        distill(teacher, student, out_dir=tmp_path / 'run', **{**RUN, **kw})
    assert not (tmp_path / 'run' / 'log.jsonl').exists() and not checkpoints(tmp_path / 'run')


def test_label_conditional_guided_run_and_text_context(tmp_path):
    student = distill(ring(labels=[0, 0, 1, 1]), small(num_classes=2), labels=[0, 1], guidance=2.,
                      out_dir=tmp_path / 'a', **RUN)
    back = load_student(tmp_path / 'a' / 'student')
    assert (back.cond_kind, back.guidance) == ('label', 2.)
    e, c = torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    assert torch.equal(one_step_sample(back, e, c), one_step_sample(student, e, c))
    # a text teacher gets the prompts of the context set, drawn anew each step, and the student is conditioned on text
    teacher = TextTeacher()
    student = distill(teacher, small(), prompts=['a', 'b'], out_dir=tmp_path / 'b', **RUN)
    seen = [p for cond in teacher.conds for p in cond]
    assert set(seen) == {'a', 'b'} and len(teacher.conds) > RUN['steps']
    assert student.cond_kind == 'text' and load_student(tmp_path / 'b' / 'student').cond_kind == 'text'


def test_student_keeps_the_teachers_linear_schedule(tmp_path):
    teacher = ring(schedule=linear_schedule())
    distill(teacher, small(), out_dir=tmp_path, **{**RUN, 'sample_every': 3})
    back = load_student(tmp_path / 'student')
    t = torch.linspace(0.01, 0.99, 7)
    assert torch.allclose(back.schedule.alpha(t).double(), teacher.schedule.alpha(t).double(), atol=1e-6)
    # not the default
    assert not torch.allclose(back.schedule.alpha(t).double(), ring().schedule.alpha(t).double(), atol=1e-3)
    assert sorted(p.name for p in (tmp_path / 'samples').iterdir()) == ['step-00000003.png', 'step-00000006.png']


def test_custom_distance_is_the_one_trained_with_and_lpips_without_weights(tmp_path):
    calls = []
    def l1(a, b):
        calls.append(len(a))
        return (a - b).abs().flatten(1).mean(1)
    distill(ring(), small(), loss=l1, out_dir=tmp_path / 'l1', diagnose_every=0, **RUN)      # the training calls only
    distill(ring(), small(), out_dir=tmp_path / 'l2', **RUN)
    assert calls == [RUN['batch_size']] * 2 * RUN['steps']        # the bootstrapping and the boundary term, every step
    first = lambda run: json.loads((tmp_path / run / 'log.jsonl').read_text().splitlines()[0])
    # same noise, times and initial weights: only the distance differs (the L1 boundary term is the mean |y - f|)
    assert first('l1')['bc'] != pytest.approx(first('l2')['bc'], rel=1e-3)
    with pytest.raises(FileNotFoundError, match='alexnet-owt-7be5be79.pth'):
        distill(ring(), small(), loss='lpips', lpips_weights=tmp_path / 'missing.pth', out_dir=tmp_path / 'lpips',
                **RUN)
    assert not checkpoints(tmp_path / 'lpips')


def test_cosine_learning_rate_resumes_exactly(tmp_path):
    run = {**RUN, 'lr_schedule': 'cosine'}       # the default
    full = weights(distill(ring(), small(), out_dir=tmp_path / 'full', **run))
    with pytest.raises(KeyboardInterrupt):
        distill(Faulty(ring(), CALLS_BEFORE_STEP(5), KeyboardInterrupt()), small(), out_dir=tmp_path / 'cut', **run)
    with pytest.raises(ValueError, match='different settings'):      # the schedule is part of the run's settings
        distill(ring(), small(), out_dir=tmp_path / 'cut', resume=True, **{**RUN, 'lr_schedule': 'constant'})
    resumed = weights(distill(ring(), small(), out_dir=tmp_path / 'cut', resume=True, **run))
    for k in full: assert torch.equal(full[k], resumed[k]), k
    lrs = [json.loads(l)['lr'] for l in (tmp_path / 'full' / 'log.jsonl').read_text().splitlines()]
    assert lrs[0] == 1e-3 and all(b < a for a, b in zip(lrs[:-1], lrs[1:]))



def test_lr_warmup_rises_linearly_into_the_schedule_and_is_part_of_the_run(tmp_path):
    run = {**RUN, 'lr_schedule': 'constant', 'lr_warmup': 4}
    distill(ring(), small(), out_dir=tmp_path / 'warm', lr=1e-3, **run)
    lrs = [json.loads(l)['lr'] for l in (tmp_path / 'warm' / 'log.jsonl').read_text().splitlines()]
    assert lrs == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3], rel=1e-12)
    cos = Distiller(ring(), small(), lr=1e-3, steps=10, lr_warmup=2)          # warm-up times the cosine
    assert [cos.lr_at(k) for k in (0, 1)] == pytest.approx([5e-4, 1e-3 * 0.5 * (1 + math.cos(math.pi / 10))])
    with pytest.raises(ValueError, match='different settings'):
        distill(ring(), small(), out_dir=tmp_path / 'warm', resume=True, **{**run, 'lr_warmup': 2, 'steps': 8})
    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match='lr_warmup= must be an integer >= 0'): DistillConfig(lr_warmup=bad)


class Interrupting:
    "A teacher (not a boot_nb class) that sends this process a SIGINT, as Ctrl-C does, on its `at`-th call."
    def __init__(self, teacher, at):
        self.teacher, self.at, self.schedule, self.sample_shape = teacher, at, teacher.schedule, teacher.sample_shape
    def __call__(self, x, t, cond=None):
        self.at -= 1
        if self.at == 0: os.kill(os.getpid(), signal.SIGINT)
        return self.teacher(x, t, cond)


def test_ctrl_c_saves_a_checkpoint_says_how_to_resume_and_resumes_exactly(tmp_path, capsys, sigint):
    full = weights(distill(ring(), small(), out_dir=tmp_path / 'full', **RUN))
    capsys.readouterr()
    # Ctrl-C during step 2 (the first checkpoint is due at step 3): the step finishes, is saved, and distill returns
    cut = distill(Interrupting(ring(), CALLS_BEFORE_STEP(2) + 1), small(), out_dir=tmp_path / 'cut', **RUN)
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip()]
    assert len(lines) == 1 and 'step 2 of 6' in lines[0] and 'resume=True' in lines[0], lines
    assert [s for s, _ in checkpoints(tmp_path / 'cut')] == [2] and not (tmp_path / 'cut' / 'student').exists()
    # stopped early: not the full run's weights
    assert any(not torch.equal(v, full[k]) for k, v in weights(cut).items())
    resumed = weights(distill(ring(), small(seed=1), out_dir=tmp_path / 'cut', resume=True, **RUN))
    for k in full: assert torch.equal(full[k], resumed[k]), k
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # the handler is put back


@pytest.mark.parametrize('sigint', [signal.SIG_IGN], indirect=True, ids=['SIG_IGN'])
def test_an_ignored_sigint_stays_ignored(tmp_path, sigint):
    "A process that ignores SIGINT (a background job of a script: Ctrl-C meant for the script) runs on through one."
    distill(Interrupting(ring(), CALLS_BEFORE_STEP(2) + 1), small(), out_dir=tmp_path, **RUN)
    assert [s for s, _ in checkpoints(tmp_path)] == [3, 6] and signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_resume_where_there_is_no_checkpoint_says_so_and_keeps_the_old_log(tmp_path, capsys):
    (tmp_path / 'log.jsonl').write_text('{"step": 1, "loss": 0.5}\n')
    distill(ring(), small(), out_dir=tmp_path, resume=True, **RUN)
    assert "holds no checkpoint: starting at step 0" in capsys.readouterr().out
    old = list(tmp_path.glob('log-*.jsonl'))
    assert len(old) == 1 and old[0].read_text() == '{"step": 1, "loss": 0.5}\n'
    assert [json.loads(l)['step'] for l in (tmp_path / 'log.jsonl').read_text().splitlines()] == list(range(1, 7))


def test_distill_runs_again_in_one_process_with_other_settings(tmp_path):
    a = weights(distill(ring(), small(), out_dir=tmp_path / 'a', mixed_precision='no', **RUN))
    # accelerate's state is process-global
    distill(ring(), small(), out_dir=tmp_path / 'b', mixed_precision='bf16', **RUN)
    c = weights(distill(ring(), small(), out_dir=tmp_path / 'c', mixed_precision='no', **RUN))
    for k in a: assert torch.equal(a[k], c[k]), k


def test_train_step_reads_nothing_back_and_skips_a_non_finite_update(tmp_path, monkeypatch):
    # steps 0, 1 fine, step 2 NaN
    d = Distiller(Faulty(ring(), CALLS_BEFORE_STEP(3)), small(), out_dir=tmp_path, batch_size=16)
    d.train_step(0)        # the first step may compute what is then cached (the loss weight's floor)
    def no_sync(*a): raise AssertionError('host sync inside train_step')
    with monkeypatch.context() as m:
        for name in ('item', 'tolist', '__bool__', '__float__', '__int__'): m.setattr(torch.Tensor, name, no_sync)
        d.train_step(1)
        before = weights(d.student)
        d.train_step(2)
    after = weights(d.student)
    for k in before: assert torch.equal(before[k], after[k]), k
    assert (d.nonfinite.item(), d.first_nonfinite.item()) == (1, 3)
    with pytest.raises(FloatingPointError, match='Non-finite loss at step 3'): d.finite_check(None)


def test_gradient_accumulation_averages_its_micro_batches(tmp_path):
    d = Distiller(ring(), small(), out_dir=tmp_path, batch_size=8, grad_accum=3)
    twin = copy.deepcopy(d.student)
    expect = []
    for micro in range(3):
        eps, cond, g = d.draw(0, micro)
        out = d.loss(twin, d.teacher, eps, cond, generator=g)
        out['loss'].div(3).backward()
        expect.append(torch.stack([out['loss'], out['bs'], out['bc']]).detach())
    vals = d.train_step(0)
    assert torch.allclose(vals, torch.stack(expect).mean(0), rtol=1e-6)
    for p, q in zip(d.student.parameters(), twin.parameters()): assert p.grad is None and q.grad is not None
    assert not torch.equal(d.draw(0, 1)[0], d.draw(0, 2)[0])       # each micro-batch draws its own noise


def test_compile_trains_the_same_student(tmp_path):
    run = {**RUN, 'steps': 3}
    plain = weights(distill(ring(), small(), out_dir=tmp_path / 'plain', **run))
    compiled = weights(distill(ring(), small(), out_dir=tmp_path / 'compiled', compile=True, **run))
    for k in plain: assert torch.allclose(plain[k], compiled[k], atol=1e-5), k


def test_cpu_threads_lives_in_config_and_puts_torchs_setting_back():
    from boot_nb import config, train
    assert train.cpu_threads is config.cpu_threads                  # re-exported for one release: it lived here
    before = torch.get_num_threads()
    with config.cpu_threads(config.DistillConfig(threads=before + 1), torch.device('cpu')) as n:
        assert n == torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before


def test_idle_cores_sees_a_busy_process_and_distill_leaves_its_core_alone(monkeypatch):
    from boot_nb import config
    if config.idle_cores() < 1.5: pytest.skip('other processes keep this machine too busy to see one more')
    spin = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    try:
        time.sleep(0.3)
        busy = config.idle_cores()
    finally: spin.kill(); spin.wait()
    assert busy <= config.idle_cores() - 0.5           # one process spinning takes about one core
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        for idle, want in [(3.8, 4), (1.2, 1), (0.1, 1), (6.0, 4)]:       # never more than torch's setting, at least 1
            monkeypatch.setattr(config, 'idle_cores', lambda idle=idle: idle)
            with config.cpu_threads(config.DistillConfig(), torch.device('cpu')) as n: assert n == want, (idle, n)
        with config.cpu_threads(config.DistillConfig(threads=3), torch.device('cpu')) as n: assert n == 3
        assert torch.get_num_threads() == 4                                  # put back after the run
    finally: torch.set_num_threads(before)


def test_per_t_diagnostics_are_logged_and_change_nothing(tmp_path):
    """Every `diagnose_every` steps log.jsonl has L^BS in 8 t-bins and L^BC on fixed noise; the trained weights are
    those of a run without."""
    with_diag = distill(ring(), small(), out_dir=tmp_path / 'a', **{**RUN, 'diagnose_every': 2})
    without = distill(ring(), small(), out_dir=tmp_path / 'b', **{**RUN, 'diagnose_every': 0})
    for p, q in zip(with_diag.parameters(), without.parameters()): assert torch.equal(p, q)
    log = [json.loads(l) for l in (tmp_path / 'a' / 'log.jsonl').read_text().splitlines()]
    diag = [r for r in log if 'bs_by_t' in r]
    assert [r['step'] for r in diag] == [2, 4, 6]
    for r in diag:
        assert (len(r['t_bins']) == len(r['bs_by_t']) == 8
                and all(math.isfinite(v) and v >= 0 for v in r['bs_by_t'] + [r['bc_fixed']]))
        assert r['t_bins'] == sorted(r['t_bins']) and 0 < r['t_bins'][0] and r['t_bins'][-1] < 1
    assert not any('bs_by_t' in json.loads(l) for l in (tmp_path / 'b' / 'log.jsonl').read_text().splitlines())



def test_ema_ends_in_the_student_and_resumes_bit_exact(tmp_path):
    """`ema_decay`: the finished student holds the moving average of its weights while training follows the raw ones;
    the average is in every checkpoint, so a run stopped at one and resumed ends bit-identical; a checkpoint that lost
    it falls back."""
    # a rate of the step alone
    run = lambda out, steps, resume=False, decay=0.8: distill(ring(), small(), **{**RUN, 'steps': steps}, out_dir=out,
                                                              resume=resume, ema_decay=decay, lr_schedule='constant')
    same = lambda a, b: a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    full = weights(run(tmp_path / 'full', 6))
    # the saved student is the returned one
    assert same(full, weights(load_student(tmp_path / 'full' / 'student')))
    run(tmp_path / 'cut', 3)
    assert (checkpoints(tmp_path / 'cut')[-1][1] / 'ema.safetensors').exists()
    # resumed: the same average, bit for bit
    assert same(weights(run(tmp_path / 'cut', 6, resume=True)), full)
    raw = weights(run(tmp_path / 'raw', 6, decay=None))
    # the student is the average, not the last weights
    assert not same(raw, full)
    # a checkpoint trains on: raw weights
    assert same(weights(load_student(checkpoints(tmp_path / 'full')[-1][1] / 'student')), raw)
    # the newest checkpoint loses its average
    (checkpoints(tmp_path / 'full')[-1][1] / 'ema.safetensors').unlink()
    with pytest.warns(UserWarning, match='has no ema.safetensors'): run(tmp_path / 'full', 9, resume=True)
    assert ([s for s, _ in checkpoints(tmp_path / 'full')] == [6, 9]
            and (tmp_path / 'full' / 'checkpoints' / 'damaged-step-00000006').is_dir())
