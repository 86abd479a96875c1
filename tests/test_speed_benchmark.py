"""benchmarks/speed.py on a tiny CPU run: its JSON has every figure, each ratio is computed from its own measurements,
and its frozen old step computes what the library's step computes."""
import importlib.util, json, math, os, statistics, subprocess, sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'benchmarks' / 'speed.py'
B = 2
PARTS = ('teacher', 'student_forward', 'student_forward_backward', 'optimizer')


def _speed():
    "benchmarks/speed.py as a module."
    spec = importlib.util.spec_from_file_location('speed', SCRIPT)
    speed = importlib.util.module_from_spec(spec); spec.loader.exec_module(speed)
    return speed


@pytest.fixture(scope='module')
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp('speed') / 'speed.json'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    run = subprocess.run([sys.executable, str(SCRIPT), '--device', 'cpu', '--threads', '1', '--teacher', 'digits',
                          '--batch-size', str(B), '--steps', '3', '--warmup', '1', '--sample-batch', '2',
                          '--ddim-steps', '2', '--profile', '2', '--json', str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(out.read_text()), run.stdout, out


def test_fields(result):
    r, stdout, _ = result
    assert r['command'].startswith('python benchmarks/speed.py --device cpu')
    assert (r['config']['threads'] == {'old': 1, 'new': 1} and r['config']['batch_size'] == B
            and r['config']['steps'] == 3)
    for side in ('old', 'new'):
        d = r[side]
        assert len(d['step_s_blocks']) == 3 and all(t > 0 for t in d['step_s_blocks'])
        assert set(d['parts_s']) == set(PARTS) and all(len(d['parts_s_blocks'][k]) == 3 for k in PARTS)
        assert d['flops'] > 0 and d['tflops_per_s'] > 0
    assert r['peak_memory_bytes'] > 0 and 'ru_maxrss' in r['peak_memory_note']
    s = r['sampling']
    assert s['batch'] == 2 and s['ddim_steps'] == 2 and s['one_step_s'] > 0 and s['ddim_s'] > 0
    assert 'x faster' in stdout and 'step / sum of parts' in stdout and 'DDIM-2' in stdout


def test_ratios_are_its_own(result):
    r, *_ = result
    for side in ('old', 'new'):
        d = r[side]
        assert d['step_s'] == statistics.median(d['step_s_blocks'])
        for k in PARTS: assert d['parts_s'][k] == statistics.median(d['parts_s_blocks'][k])
        assert math.isclose(d['parts_sum_s'], sum(d['parts_s'].values()))
        assert math.isclose(d['step_over_parts'], d['step_s'] / d['parts_sum_s'])
        assert math.isclose(d['tflops_per_s'], d['flops'] / d['step_s'] / 1e12)
    o, n = r['old']['step_s_blocks'], r['new']['step_s_blocks']       # paired by round: blocks that ran back to back
    assert math.isclose(r['new_vs_old_speedup'], statistics.median([o[k] / n[k] for k in range(3)]))
    s = r['sampling']
    assert (math.isclose(s['one_step_samples_per_s'], 2 / s['one_step_s'])
            and math.isclose(s['ddim_samples_per_s'], 2 / s['ddim_s']))
    assert math.isclose(s['one_step_over_ddim'], s['ddim_s'] / s['one_step_s'])


def test_markdown(result):
    "The README table is made from the JSON: its row shows the figures the JSON holds."
    r, _, path = result
    row = subprocess.run([sys.executable, str(SCRIPT), '--markdown', str(path)], capture_output=True, text=True,
                         check=True).stdout.splitlines()[-1]
    assert (f"| {r['old']['step_s'] * 1e3:.1f} | {r['new']['step_s'] * 1e3:.1f} | {r['new_vs_old_speedup']:.2f}x |"
            in row)


def test_recorded_calls(result):
    """The old step calls the teacher three times at B, the student without grad at B and with grad at 2B; both steps
    count the same FLOPs."""
    r, *_ = result
    assert r['old']['teacher_calls'] == [B, B, B]
    assert r['old']['student_calls'] == [[B, 'no grad'], [2 * B, 'grad']]
    assert sum(r['new']['teacher_calls']) == 3 * B        # the same teacher evaluations, however batched
    assert math.isclose(r['old']['flops'], r['new']['flops'], rel_tol=1e-6)


def test_old_step_computes_what_the_library_computes():
    "The frozen old step and `Distiller.train_step` give the same losses from the same seed and the same teacher copy."
    speed = _speed()
    from boot_nb.train import DistillConfig, Distiller
    torch.set_num_threads(1)
    teacher = speed.make_teacher('digits')
    old = speed.OldStep(speed.copy.deepcopy(teacher), batch_size=B, lr=1e-3)
    new = Distiller(teacher,
                    config=DistillConfig(batch_size=B, lr=1e-3, mixed_precision='no', cpu=True, steps=speed.RUN_STEPS))
    for step in range(2):       # the second step also checks that both updated the student alike
        torch.testing.assert_close(old.train_step(step), new.train_step(step), rtol=1e-4, atol=1e-6)


def test_profile(result):
    """The profile accounts for the profiled steps' time and for every FLOP the counter saw, and puts the UNet's
    convolutions first."""
    r, stdout, _ = result
    p, speed = r['profile'], _speed()
    assert p['steps'] == 2 and list(p['kinds']) == [k for k, _ in speed.KINDS] + [speed.OUTSIDE]
    # nothing counted twice, nothing left out
    assert math.isclose(sum(d['s'] for d in p['kinds'].values()), p['wall_s'])
    assert sum(d['flops'] for d in p['kinds'].values()) == r['new']['flops']
    for k in ('convolution forward', 'convolution backward'):
        d = p['kinds'][k]
        assert d['s'] > 0 and d['flops'] > 0 and math.isclose(d['flops_per_s'], d['flops'] / d['s'])
    m = p['matmul']
    assert m['n'] >= 512 and m['dtype'] == 'float32' and m['flops_per_s'] > 0
    assert 'profile of 2 new steps' in stdout and f"a {m['n']}x{m['n']} float32 matmul" in stdout


def test_kinds_of_ops():
    kind = _speed().kind
    for op, k in [('aten::mkldnn_convolution', 'convolution forward'),
                  ('aten::cudnn_convolution', 'convolution forward'), ('aten.convolution', 'convolution forward'),
                  ('aten::convolution_backward', 'convolution backward'),
                  ('aten::cudnn_convolution_backward_weight', 'convolution backward'),
                  ('aten::_slow_conv2d_backward', 'convolution backward'),
                  ('aten::_slow_conv2d_forward', 'convolution forward'), ('aten::thnn_conv2d', 'convolution forward'),
                  ('aten::_convert_indices_from_coo_to_csr', 'other aten ops (element-wise, copies, AdamW)'),
                  ('aten.mm', 'matmul'), ('aten::addmm', 'matmul'),
                  ('aten::_scaled_dot_product_flash_attention_for_cpu', 'attention'),
                  ('aten::native_group_norm', 'normalization'),
                  ('aten::linalg_vector_norm', 'other aten ops (element-wise, copies, AdamW)'),
                  ('aten::silu', 'other aten ops (element-wise, copies, AdamW)')]:
        assert kind(op) == k, op


def test_cudagraphs_flag(result):
    "--cudagraphs is refused where it would measure nothing (no compile, no GPU, DDIM sampling); the tables name it."
    base = [sys.executable, str(SCRIPT), '--teacher', 'digits', '--threads', '1', '--batch-size', str(B), '--steps',
            '1', '--warmup', '0']
    for extra, says in [(['--device', 'cpu', '--cudagraphs', '--sample-batch', '0'],
                         '--cudagraphs needs --compile and --device cuda'),
                        (['--device', 'cpu', '--cudagraphs', '--compile'], 'add --sample-batch 0'),
                        (['--device', 'cpu', '--cudagraphs', '--compile', '--sample-batch', '0'],
                         '--cudagraphs needs --compile and --device cuda')]:
        run = subprocess.run(base + extra, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert run.returncode == 2 and says in run.stderr, run.stderr[-2000:]
    r, *_ = result
    assert r['config']['cudagraphs'] is False
    speed = _speed()
    graphs = {**r, 'config': {**r['config'], 'compile': True, 'cudagraphs': True}}
    assert ('| no, compile + CUDA graphs |' in speed.markdown([graphs])
            and 'compile True + CUDA graphs' in speed.table(graphs))
    assert 'CUDA graphs' not in speed.markdown([r]) + speed.table(r)
