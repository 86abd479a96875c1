"""`distill` keeps its promises: exact resume, a clear stop on a non-finite loss with the last good checkpoint kept,
and bad arguments rejected before any training step."""
import json, math, re

import pytest
import torch
from torch import nn

from boot_nb.exact import GaussianMixtureTeacher
from boot_nb.sampling import one_step_sample
from boot_nb.schedules import DiscreteSchedule, linear_schedule
from boot_nb.student import MLPStudent, load_student
from boot_nb.train import checkpoints, distill

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


# Teacher calls: 1 check before training, then 3 per Heun step (f_t, f_s, and f at t_max for the boundary).
CALLS_BEFORE_STEP = lambda k: 1 + 3 * (k - 1)


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
    run = {**RUN, 'lr_schedule': 'constant'}      # a rate that does not depend on `steps`: a run can be extended exactly
    full = weights(distill(ring(), small(), out_dir=tmp_path / 'full', **run))
    distill(ring(), small(), out_dir=tmp_path / 'two', **{**run, 'steps': 3})
    more = weights(distill(ring(), small(), out_dir=tmp_path / 'two', resume=True, **run))
    for k in full: assert torch.equal(full[k], more[k]), k
    with pytest.raises(ValueError, match='different settings'):
        distill(ring(), small(), out_dir=tmp_path / 'two', resume=True, **{**run, 'steps': 9, 'delta': 0.1})
    with pytest.raises(ValueError, match='resume=True'):
        distill(ring(), small(), out_dir=tmp_path / 'two', **RUN)


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
    "A stand-in text teacher: conditional on prompt embeddings."
    cond_kind = 'text'
    def __init__(self): self.gmm = ring(); self.schedule, self.sample_shape = self.gmm.schedule, (2,)
    def encode_prompt(self, prompts): return torch.randn(len(prompts), 4)
    def __call__(self, x, t, cond=None): return self.gmm(x, t)


@pytest.mark.parametrize('teacher, student, kw, message', [
    (ring(), small(), dict(t_min=0.5, t_max=0.5), 't_min < t_max'),
    (ring(), small(), dict(t_min=0.6, t_max=0.4), 't_min < t_max'),
    (ring(), small(), dict(t_max=1.5), 't_min < t_max'),
    (ring(), small(), dict(delta=0.), '`delta` must be > 0'),
    (ring(), small(), dict(delta=-0.1), '`delta` must be > 0'),
    (ring(), small(), dict(steps=0), '`steps` must be an integer >= 1'),
    (ring(), small(), dict(batch_size=2.5), '`batch_size` must be an integer'),
    (ring(), small(), dict(lr=0.), '`lr` must be > 0'),
    (ring(), small(), dict(beta=-1.), '`beta` must be >= 0'),
    (ring(), small(), dict(solver='rk4'), "`solver` must be 'heun' or 'ddim'"),
    (ring(), small(), dict(loss='l1'), "`loss` must be 'l2' or 'lpips' or a callable"),
    (ring(), small(), dict(mixed_precision='fp8'), "`mixed_precision` must be"),
    (ring(), small(), dict(checkpoint_every=0), '`checkpoint_every` must be'),
    (ring(), WrongShape(), {}, 'student returns shape (3,) per sample but the teacher makes samples of shape (2,)'),
    (ring(), nn.Linear(2, 2), {}, 'student failed'),
    (ring(), 'not a module', {}, '`student` must be an nn.Module'),
    (ring(), None, {}, 'no network to copy'),
    (ring(), small(), dict(prompts=['a cat']), 'unconditional'),
    (ring(), small(), dict(labels=[0, 1]), 'unconditional'),
    (ring(labels=[0, 0, 1, 1]), small(num_classes=2), dict(prompts=['a cat']), 'class labels: pass labels='),
    (ring(labels=[0, 0, 1, 1]), small(num_classes=2), dict(labels=[0, 7]), 'teacher failed on a test batch'),
    (ring(labels=[0, 0, 1, 1]), small(num_classes=2), dict(labels=[]), '`labels` is empty'),
    (ring(labels=[0, 0, 1, 1]), small(num_classes=2), dict(guidance=2.), '`guidance` needs a context set'),
    (ring(labels=[0, 0, 1, 1]), small(num_classes=2), dict(labels=[0], prompts=['a']), 'not both'),
    (TextTeacher(), small(), dict(labels=[0, 1]), 'takes text: pass prompts='),
    (ring(schedule=DiscreteSchedule(torch.linspace(0.99, 0.01, 100))), small(), dict(t_min=0.002), "first training timestep"),
])
def test_bad_arguments_fail_before_any_step(tmp_path, teacher, student, kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        distill(teacher, student, out_dir=tmp_path / 'run', **{**RUN, **kw})
    assert not (tmp_path / 'run' / 'log.jsonl').exists() and not checkpoints(tmp_path / 'run')


def test_label_conditional_guided_run_and_text_context(tmp_path):
    student = distill(ring(labels=[0, 0, 1, 1]), small(num_classes=2), labels=[0, 1], guidance=2., out_dir=tmp_path / 'a', **RUN)
    back = load_student(tmp_path / 'a' / 'student')
    assert (back.cond_kind, back.guidance) == ('label', 2.)
    e, c = torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    assert torch.equal(one_step_sample(back, e, c), one_step_sample(student, e, c))
    # a text teacher's prompts are encoded once into the context set
    distill(TextTeacher(), small(), prompts=['a', 'b'], out_dir=tmp_path / 'b', **RUN)


def test_linear_schedule_and_sample_grid(tmp_path):
    distill(ring(schedule=linear_schedule()), small(), out_dir=tmp_path, **{**RUN, 'sample_every': 3})
    assert sorted(p.name for p in (tmp_path / 'samples').iterdir()) == ['step-00000003.png', 'step-00000006.png']


def test_custom_distance_and_lpips_without_weights(tmp_path):
    l1 = lambda a, b: (a - b).abs().flatten(1).mean(1)
    distill(ring(), small(), loss=l1, out_dir=tmp_path / 'l1', **RUN)
    with pytest.raises(FileNotFoundError, match='alexnet-owt-7be5be79.pth'):
        distill(ring(), small(), loss='lpips', lpips_weights=tmp_path / 'missing.pth', out_dir=tmp_path / 'lpips', **RUN)
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

