"""benchmarks/speed.py on a tiny CPU run: its JSON has every figure, each ratio is computed from its own measurements
(paired by round), the parts it replays do the step's work, and its tables show what the JSON holds."""
import importlib.util, json, math, os, statistics, subprocess, sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'benchmarks' / 'speed.py'
B = 2


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
    assert r['config']['threads'] == 1 and r['config']['batch_size'] == B and r['config']['steps'] == 3
    assert 'old' not in r and 'new' not in r       # the library's step only
    d = r['step']
    assert len(d['step_s_blocks']) == 3 and all(t > 0 for t in d['step_s_blocks'])
    assert set(d['parts_s']) == set(_speed().PARTS) and all(len(v) == 3 for v in d['parts_s_blocks'].values())
    assert d['flops'] > 0 and d['tflops_per_s'] > 0
    assert r['peak_memory_bytes'] > 0 and 'ru_maxrss' in r['peak_memory_note']
    s = r['sampling']
    assert s['batch'] == 2 and s['ddim_steps'] == 2 and s['one_step_s'] > 0 and s['ddim_s'] > 0
    assert len(s['ddim_s_rounds']) == 3 and all(len(x) == 3 for x in s['one_step_s_rounds'])
    assert 'step / sum of parts' in stdout and 'student one-step vs teacher DDIM-2' in stdout


def test_ratios_are_its_own(result):
    "Each figure is the median of its blocks; each ratio the median over rounds of the two figures measured together."
    r, *_ = result
    d = r['step']
    assert d['step_s'] == statistics.median(d['step_s_blocks'])
    for k, v in d['parts_s_blocks'].items(): assert d['parts_s'][k] == statistics.median(v)
    assert math.isclose(d['parts_sum_s'], sum(d['parts_s'].values()))
    sums = [sum(v[i] for v in d['parts_s_blocks'].values()) for i in range(3)]
    assert math.isclose(d['step_over_parts'], statistics.median([d['step_s_blocks'][i] / sums[i] for i in range(3)]))
    assert math.isclose(d['tflops_per_s'], d['flops'] / d['step_s'] / 1e12)
    s = r['sampling']
    assert s['one_step_s'] == statistics.median([x for rnd in s['one_step_s_rounds'] for x in rnd])
    assert s['ddim_s'] == statistics.median(s['ddim_s_rounds'])
    assert (math.isclose(s['one_step_samples_per_s'], 2 / s['one_step_s'])
            and math.isclose(s['ddim_samples_per_s'], 2 / s['ddim_s']))
    assert math.isclose(s['one_step_over_ddim'], statistics.median(
        [m / statistics.median(o) for m, o in zip(s['ddim_s_rounds'], s['one_step_s_rounds'])]))


def test_markdown(result, tmp_path):
    "The page's table is made from the JSON: its row shows the figures the JSON holds; an old-vs-new record is refused."
    r, _, path = result
    row = subprocess.run([sys.executable, str(SCRIPT), '--markdown', str(path)], capture_output=True, text=True,
                         check=True).stdout.splitlines()[-1]
    d, s = r['step'], r['sampling']
    assert f"| digits, {B} | no | {d['step_s'] * 1e3:.1f} | {d['step_over_parts']:.2f} |" in row
    assert f"DDIM-2 ({s['one_step_over_ddim']:.1f}x, batch 2) |" in row
    old = tmp_path / 'old.json'
    old.write_text(json.dumps({'old': {}, 'new': {}, 'new_vs_old_speedup': 1.}))
    run = subprocess.run([sys.executable, str(SCRIPT), '--markdown', str(old)], capture_output=True, text=True)
    assert run.returncode == 2 and 'a record of the old-vs-new comparison' in run.stderr


def test_recorded_calls(result):
    "The step evaluates the teacher three times a sample (Heun twice, the boundary once), the student at B and 2B."
    r, *_ = result
    assert sum(r['step']['teacher_calls']) == 3 * B
    assert r['step']['student_calls'] == [[B, 'no grad'], [2 * B, 'grad']]


def test_parts_do_the_steps_work():
    "The parts, replayed from one recorded step, count the FLOPs of a whole step: nothing of the step is left out."
    from torch.utils.flop_counter import FlopCounterMode
    speed = _speed()
    torch.set_num_threads(1)
    args = Namespace(batch_size=B, lr=1e-3, mixed_precision='no', compile=False, device='cpu', threads=1,
                     cudagraphs=False)
    step = speed.Step(speed.make_teacher('digits'), args)
    flops = sum(speed.count_flops(step, 'cpu', False).values())
    with FlopCounterMode(display=False) as fc:
        for fn in speed.part_fns(step, 'cpu').values(): fn()
    assert flops > 0 and fc.get_total_flops() == flops
    assert step.next == 1       # count_flops ran one step of the library


def test_profile(result):
    """The profile accounts for the profiled steps' time and for every FLOP the counter saw, and puts the UNet's
    convolutions first."""
    r, stdout, _ = result
    p, speed = r['profile'], _speed()
    assert p['steps'] == 2 and list(p['kinds']) == [k for k, _ in speed.KINDS] + [speed.OUTSIDE]
    # nothing counted twice, nothing left out
    assert math.isclose(sum(d['s'] for d in p['kinds'].values()), p['wall_s'])
    assert sum(d['flops'] for d in p['kinds'].values()) == r['step']['flops']
    for k in ('convolution forward', 'convolution backward'):
        d = p['kinds'][k]
        assert d['s'] > 0 and d['flops'] > 0 and math.isclose(d['flops_per_s'], d['flops'] / d['s'])
    m = p['matmul']
    assert m['n'] >= 512 and m['dtype'] == 'float32' and m['flops_per_s'] > 0
    assert 'profile of 2 steps' in stdout and f"a {m['n']}x{m['n']} float32 matmul" in stdout


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


def test_refusals_and_cudagraphs_label(result, capsys):
    """--cudagraphs is refused where it would measure nothing (no compile, no GPU, DDIM sampling), --profile with
    --compile; the tables name CUDA graphs."""
    speed = _speed()
    base = ['--device', 'cpu', '--teacher', 'digits', '--threads', '1', '--steps', '1', '--warmup', '0']
    for extra, says in [(['--cudagraphs', '--sample-batch', '0'], '--cudagraphs needs --compile and --device cuda'),
                        (['--cudagraphs', '--compile'], 'add --sample-batch 0'),
                        (['--cudagraphs', '--compile', '--sample-batch', '0'],
                         '--cudagraphs needs --compile and --device cuda'),
                        (['--compile', '--profile', '2'], 'profile without --compile')]:
        with pytest.raises(SystemExit) as e: speed.main(base + extra)
        assert e.value.code == 2 and says in capsys.readouterr().err, extra
    r, *_ = result
    assert r['config']['cudagraphs'] is False
    graphs = {**r, 'config': {**r['config'], 'compile': True, 'cudagraphs': True}}
    assert ('| no, compile + CUDA graphs |' in speed.markdown([graphs])
            and 'compile True + CUDA graphs' in speed.table(graphs))
    assert 'CUDA graphs' not in speed.markdown([r]) + speed.table(r)
