"""The CUDA paths of the training step (on an H200 the no-sync test found the schedule table copied to the GPU at every
call): run on a machine with a GPU (`python -m pytest tests/test_gpu.py`); skipped elsewhere."""
import pytest
import torch

from boot_nb.teachers import load_teacher
from boot_nb.train import Distiller, checkpoints, distill
from test_train import RUN, Faulty, CALLS_BEFORE_STEP, ring, small, weights

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


def test_bf16_is_the_default_on_a_gpu(tmp_path):
    d = Distiller(load_teacher('digits'), out_dir=tmp_path, batch_size=8)
    assert d.accelerator.device.type == 'cuda'
    assert d.config.mixed_precision == ('bf16' if torch.cuda.is_bf16_supported() else 'no')


def test_train_step_never_waits_for_the_gpu(tmp_path):
    d = Distiller(load_teacher('digits'), out_dir=tmp_path, batch_size=8)
    d.train_step(0)                          # the first step may compute and cache host values
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')  # any device -> host copy or sync raises
    try:
        for step in range(1, 4): d.train_step(step)
    finally: torch.cuda.set_sync_debug_mode('default')


@pytest.mark.parametrize('precision', ['no', 'bf16', 'fp16'])
def test_non_finite_step_is_skipped_on_the_gpu(tmp_path, precision):
    d = Distiller(Faulty(ring(), CALLS_BEFORE_STEP(3)), small(), out_dir=tmp_path, batch_size=16,
                  mixed_precision=precision)
    d.train_step(0); d.train_step(1)
    before = weights(d.student)
    d.train_step(2)
    for k, v in weights(d.student).items(): assert torch.equal(before[k], v), k
    with pytest.raises(FloatingPointError, match='Non-finite loss at step 3'): d.finite_check(None)


@pytest.mark.parametrize('precision', ['bf16', 'fp16'])
def test_interrupted_run_resumes_bit_exact_on_the_gpu(tmp_path, precision):
    run = {**RUN, 'mixed_precision': precision}
    full = weights(distill(ring(), small(), out_dir=tmp_path / 'full', **run))
    with pytest.raises(KeyboardInterrupt):
        distill(Faulty(ring(), CALLS_BEFORE_STEP(5), KeyboardInterrupt()), small(), out_dir=tmp_path / 'cut', **run)
    assert [s for s, _ in checkpoints(tmp_path / 'cut')] == [3]
    if precision == 'fp16': assert (checkpoints(tmp_path / 'cut')[-1][1] / 'scaler.pt').exists()
    resumed = weights(distill(ring(), small(seed=1), out_dir=tmp_path / 'cut', resume=True, **run))
    for k in full: assert torch.equal(full[k].cpu(), resumed[k].cpu()), k


def test_compiled_digits_run_matches_the_eager_one(tmp_path):
    teacher = load_teacher('digits')
    eager = Distiller(teacher, out_dir=tmp_path / 'a', batch_size=16, mixed_precision='no')
    vals = [eager.train_step(k) for k in range(3)]
    compiled = Distiller(load_teacher('digits'), out_dir=tmp_path / 'b', batch_size=16, mixed_precision='no',
                         compile=True)
    cvals = [compiled.train_step(k) for k in range(3)]
    for a, b in zip(vals, cvals): assert torch.allclose(a, b, rtol=1e-3, atol=1e-5), (a, b)
