"""Speed benchmark: a distillation step of Algorithm 1 (`boot_nb.train.Distiller.train_step`), its parts, and sampling.

For the step it measures:
- `step_s`: the median over blocks of `--block` consecutive steps (time per step), after `--warmup` steps; on CUDA
  with `torch.cuda.synchronize` at both ends of a block;
- the parts measured alone, in blocks of the same size, each round's right after its steps: the teacher calls exactly as
  the step made them (recorded by a hook during one step: batch sizes, times, autocast), the student's no-grad forward,
  its forward+backward (at 2B), and the optimizer update (gradient clipping and AdamW's step); their sum, and
  `step / parts`: the median over rounds of a round's step block over the sum of its parts' blocks, run back to back
  (the ratio of two medians can move by 10% either way on a machine that switches between two speeds);
- FLOPs of one step (`torch.utils.flop_counter.FlopCounterMode`: matmuls, convolutions, attention) and achieved TFLOP/s;
- peak memory: CUDA `max_memory_allocated` during one step; on the CPU the process's peak RSS (`ru_maxrss`), for the
  whole run;
and samples/s of the student's one-step sampling and of the teacher's DDIM with `--ddim-steps` steps, interleaved:
`one step vs DDIM` is the median over rounds of a round's DDIM time over its one-step time. With `--profile N`, N more
steps under `torch.profiler`: the time a step spends by kind of op (convolutions forward and backward, attention,
matmuls, normalization, the other aten ops, and the rest: Python and autograd between ops, or an idle GPU), their
FLOP/s (FLOPs from the counter above), and, for scale, the FLOP/s of one large matmul on the same device.

    python benchmarks/speed.py --teacher digits --threads 1 --profile 10 --json benchmarks/results/speed-cpu.json  # CPU
    # on a machine with a CUDA GPU:
    python benchmarks/speed.py --device cuda --teacher cifar10-sized --batch-size 128 --mixed-precision bf16 --compile
    python benchmarks/speed.py --markdown benchmarks/results/speed-cpu.json      # the benchmarks page's table

`--teacher` takes `digits` (the shipped teacher), `cifar10-sized` (`UNet2DModel` in google/ddpm-cifar10-32's layout,
35.7M parameters, random weights, its linear DDPM schedule, epsilon prediction, clip_sample) or a teacher folder
(`load_teacher`). Unconditional teachers only.

Up to commit c8623ea this script also timed a frozen copy of the step of commit 23b7ed6 beside the library's ("new vs
old"); the results files with `old` and `new` keys are the record of that comparison (`git show
c8623ea:benchmarks/speed.py` made and tabulates them).
"""
import argparse, importlib, json, os, platform, re, resource, shlex, statistics, sys, time
from contextlib import nullcontext

import torch

RUN_STEPS = 1500     # the README run's length: the cosine learning rate decays over it
PARTS = ('teacher', 'student_forward', 'student_forward_backward', 'optimizer')

def make_teacher(name, cifar_scale=1.):
    "The teacher `--teacher` names."
    from boot_nb.teachers import load_teacher
    if name != 'cifar10-sized': return load_teacher(name)
    import diffusers
    from boot_nb.teacher_training import cifar10_unet
    from boot_nb.teachers import DiffusersTeacher
    torch.manual_seed(0)
    # google/ddpm-cifar10-32's scheduler: 1000 linear betas from 1e-4 to 0.02, epsilon prediction, clip_sample
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_schedule='linear', beta_start=1e-4,
                                        beta_end=0.02, prediction_type='epsilon', clip_sample=True)
    return DiffusersTeacher.from_diffusers(cifar10_unet(cifar_scale), scheduler)

class Step:
    """The library's step (`Distiller`) with its step counter; without --threads on the thread count `distill` would
    choose. `begin` runs before each step and each part: a new iteration of CUDA graphs (--cudagraphs)."""
    def __init__(self, teacher, args):
        from boot_nb.config import DistillConfig, cpu_threads
        from boot_nb.train import Distiller
        self.distiller = d = Distiller(teacher, config=DistillConfig(
            batch_size=args.batch_size, lr=args.lr, mixed_precision=args.mixed_precision, compile=args.compile,
            cpu=args.device == 'cpu', steps=RUN_STEPS, threads=args.threads))
        with cpu_threads(d.config, d.accelerator.device) as n: pass
        torch.set_num_threads(n)
        self.threads, self.next, self.calls = n, 0, []
        self.begin = torch.compiler.cudagraph_mark_step_begin if args.cudagraphs else (lambda: None)

    def __call__(self):
        self.begin()
        out = self.distiller.train_step(self.next)
        self.next += 1
        return out

def as_module(obj, what):
    if not isinstance(obj, torch.nn.Module):
        raise TypeError(f'speed.py records the {what} calls of a step with a hook, so the {what} must be an nn.Module, '
                        f'got {type(obj).__name__}.')
    return obj

def record_calls(step, device_type):
    "One step with hooks on the teacher and the student: each call's arguments, grad mode and autocast state."
    calls, d = [], step.distiller
    def hook(who):
        def pre(module, args, kwargs):
            ac = torch.is_autocast_enabled(device_type)
            calls.append(dict(who=who, grad=torch.is_grad_enabled(),
                              autocast=(ac, torch.get_autocast_dtype(device_type) if ac else None),
                              args=tuple(a.detach().clone() if torch.is_tensor(a) else a for a in args),
                              kwargs=dict(kwargs)))
        return pre
    handles = [as_module(m, who).register_forward_pre_hook(hook(who), with_kwargs=True)
               for who, m in (('teacher', d.teacher), ('student', d.student))]
    try: step()
    finally:
        for h in handles: h.remove()
    return calls

def part_fns(step, device_type):
    "The step's parts as functions that each run one step's worth of that part alone (from `step.calls`)."
    d = step.distiller
    def call(c, module):
        on, dtype = c['autocast']
        with torch.set_grad_enabled(c['grad']), torch.autocast(device_type, dtype) if on else nullcontext():
            return module(*c['args'], **c['kwargs'])
    teacher = [c for c in step.calls if c['who'] == 'teacher']
    nograd = [c for c in step.calls if c['who'] == 'student' and not c['grad']]
    grad = [c for c in step.calls if c['who'] == 'student' and c['grad']]
    params = [p for p in d.student.parameters() if p.requires_grad]
    def teacher_part():
        step.begin()
        for c in teacher: call(c, d.teacher)
    def nograd_part():
        step.begin()
        for c in nograd: call(c, d.student)
    def grad_part():
        step.begin()
        for c in grad: call(c, d.student).float().square().mean().backward()
    def optimizer_part():
        # the gradients of grad_part stay in place so that every repeat updates all parameters
        if d.config.grad_clip: d.accelerator.clip_grad_norm_(params, d.config.grad_clip)
        d.opt.step()
    return dict(zip(PARTS, (teacher_part, nograd_part, grad_part, optimizer_part)))

def count_flops(step, device_type, compiled):
    """FLOPs of one step by op, run eagerly (a compiled step computes the same), with its teacher and student calls
    recorded in `step.calls`."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc, torch.compiler.set_stance('force_eager') if compiled else nullcontext():
        step.calls = record_calls(step, device_type)
    if not any(c['who'] == 'teacher' for c in step.calls):
        raise RuntimeError('The step made no call teacher(x_t, t, cond) that the hook saw, so its teacher part cannot '
                           'be replayed: speed.py needs the loss to call the teacher object itself '
                           '(`Distiller.teacher`).')
    return {str(op): n for op, n in fc.get_flop_counts()['Global'].items()}

# The kinds of work in a step, by aten op name ('aten::mkldnn_convolution' in the profiler, 'aten.convolution' in the
# FLOP counter; bf16 on a CPU without bf16 FMA takes '_slow_conv2d_backward'): the first pattern that matches
KINDS = (('convolution backward', r'conv(?!ert).*backward'), ('convolution forward', r'conv(?!ert)'),
         ('attention', r'attention'), ('matmul', r'mm|linear|matmul'), ('normalization', r'(group|layer|batch)_norm'),
         ('other aten ops (element-wise, copies, AdamW)', r''))
OUTSIDE = 'outside aten ops (Python, autograd, idle device)'

def kind(op):
    name = op.replace('aten::', '').replace('aten.', '')
    return next(k for k, pattern in KINDS if re.search(pattern, name))

def matmul_rate(device, dtype, timed):
    """FLOP/s of a large square matmul in `dtype`, for scale: n doubles from 256 while one takes under 50 ms (up to
    8192), best of three."""
    n = 256
    while True:
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        if timed(lambda: a @ b, 1) > 0.05 or n == 8192: break      # (bf16 on a CPU without bf16 FMA: a slow, small one)
        n *= 2
    return {'n': n, 'dtype': str(dtype).replace('torch.', ''),
            'flops_per_s': 2 * n ** 3 / min(timed(lambda: a @ b, 3) for _ in range(3))}

def profile_step(step, steps, flops_by_op, timed, cuda):
    """Where `steps` steps spend their time, by KINDS: self time of aten ops (CUDA: their kernels' device time) per
    step."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda) as prof:
        wall = timed(step, steps)
    secs = {k: 0. for k, _ in KINDS}
    for e in prof.key_averages():
        if e.key.startswith('aten::'):
            secs[kind(e.key)] += (e.self_device_time_total if cuda else e.self_cpu_time_total) / 1e6 / steps
    secs[OUTSIDE] = max(wall - sum(secs.values()), 0.)
    flops = {k: 0 for k in secs}
    for op, n in flops_by_op.items(): flops[kind(op)] += n
    return {'steps': steps, 'wall_s': wall, 'kinds': {k: {'s': s, 'share': s / wall, 'flops': flops[k],
                                                          'flops_per_s': flops[k] / s if flops[k] and s else None}
                                                      for k, s in secs.items()}}

def median(xs): return statistics.median(xs)

def paired(a, b):
    "The median over rounds of a / b, each round's two figures measured back to back, at one machine speed."
    return median([x / y for x, y in zip(a, b, strict=True)])

def sample_speed(step, batch, ddim_steps, timed, rounds=3):
    """Samples/s of the student in one step and of the teacher's DDIM, from the same noise, under the same autocast;
    each round one DDIM run and three one-step runs."""
    from boot_nb.sampling import ddim_sample, one_step_sample
    acc, teacher = step.distiller.accelerator, step.distiller.teacher
    student = acc.unwrap_model(step.distiller.student).eval()
    noise = torch.randn(batch, *teacher.sample_shape, generator=torch.Generator().manual_seed(0)).to(acc.device)
    with acc.autocast():
        one_step, ddim = lambda: one_step_sample(student, noise), lambda: ddim_sample(teacher, noise, ddim_steps)
        # warm-up (and compile) at this batch
        timed(one_step, 1); timed(lambda: ddim_sample(teacher, noise, 1), 1)
        one, many = [], []
        for _ in range(rounds):
            many.append(timed(ddim, 1)); one.append([timed(one_step, 1) for _ in range(3)])
    one_s, ddim_s = median([x for r in one for x in r]), median(many)
    return {'batch': batch, 'ddim_steps': ddim_steps, 'one_step_s': one_s, 'ddim_s': ddim_s,
            'one_step_s_rounds': one, 'ddim_s_rounds': many,
            'one_step_samples_per_s': batch / one_s, 'ddim_samples_per_s': batch / ddim_s,
            'one_step_over_ddim': paired(many, [median(r) for r in one])}

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu', choices=('cpu', 'cuda'),
                   help='cpu or cuda (default: cuda if available)')
    p.add_argument('--teacher', default='digits', help='digits, cifar10-sized or a teacher folder (default: digits)')
    p.add_argument('--batch-size', type=int, default=None,
                   help='default: 32 for digits (the README run), 128 otherwise')
    p.add_argument('--lr', type=float, default=None,
                   help='default: 1e-3 for digits (the README run), else the library default')
    p.add_argument('--mixed-precision', default='no', choices=('no', 'bf16', 'fp16'))
    p.add_argument('--compile', action='store_true', help='compile the step (DistillConfig(compile=True))')
    p.add_argument('--cudagraphs', action='store_true',
                   help="with --compile on CUDA: inductor's CUDA graphs (what torch.compile's mode='reduce-overhead' "
                        'turns on), replayed from a new iteration at each step; an experiment on a host-bound step, '
                        'not a library option')
    p.add_argument('--steps', type=int, default=20, help='timed steps (default 20)')
    p.add_argument('--block', type=int, default=None, help='steps per timed block (default: 1 on the CPU, 5 on CUDA)')
    p.add_argument('--warmup', type=int, default=None, help='untimed steps first (default 3, 6 with --compile)')
    p.add_argument('--threads', type=int, default=None, help="torch's CPU threads (default: as distill chooses)")
    p.add_argument('--cifar-scale', type=float, default=1.,
                   help="cifar10-sized's channel widths times this (default 1; less for a quick check)")
    p.add_argument('--sample-batch', type=int, default=256,
                   help='batch of the one-step and DDIM sampling timings (default 256; 0: skip them)')
    p.add_argument('--ddim-steps', type=int, default=50)
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help='then profile N steps: time and FLOP/s by kind of op, beside a large matmul (default 0: no '
                        'profile)')
    p.add_argument('--json', default=None, help='write the results here')
    p.add_argument('--markdown', nargs='+', metavar='JSON',
                   help="print the benchmarks page's table of these results files, run nothing")
    args = p.parse_args(argv)
    if args.markdown:
        results = [json.load(open(f)) for f in args.markdown]
        old = [f for f, r in zip(args.markdown, results) if 'step' not in r]
        if old: p.error(f'{", ".join(old)}: a record of the old-vs-new comparison (its table is on the benchmarks '
                        'page; `git show c8623ea:benchmarks/speed.py` tabulates it), not a result of this script.')
        return print(markdown(results))
    cuda = args.device == 'cuda'
    if cuda and not torch.cuda.is_available(): p.error('--device cuda, but torch sees no CUDA device.')
    if args.profile and args.compile:
        p.error("--profile sorts a step's time by aten op, and a compiled step runs its own kernels instead: profile "
                "without --compile.")
    if args.cudagraphs and args.sample_batch:
        p.error('--cudagraphs times the steps only (DDIM feeds a graph its own outputs): add --sample-batch 0.')
    if args.cudagraphs and not (args.compile and cuda):
        p.error('--cudagraphs needs --compile and --device cuda (CUDA graphs are a GPU feature).')
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None      # other work on the machine, as the run starts
    if args.threads is not None: torch.set_num_threads(args.threads)
    if args.batch_size is None: args.batch_size = 32 if args.teacher == 'digits' else 128
    if args.lr is None and args.teacher == 'digits': args.lr = 1e-3
    block = args.block or (5 if cuda else 1)
    rounds = max(1, -(-args.steps // block))
    warmup = args.warmup if args.warmup is not None else (6 if args.compile else 3)
    device_type = 'cuda' if cuda else 'cpu'
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    from diffusers.utils import logging as dlogging
    dlogging.disable_progress_bar()
    teacher = make_teacher(args.teacher, args.cifar_scale)
    if args.cudagraphs: importlib.import_module('torch._inductor.config').triton.cudagraphs = True
    step = Step(teacher, args)

    def timed(fn, n):
        sync(); t0 = time.perf_counter()
        for _ in range(n): fn()
        sync(); return (time.perf_counter() - t0) / n

    for _ in range(warmup): step()
    res = {'flops_by_op': count_flops(step, device_type, args.compile)}
    res['flops'] = sum(res['flops_by_op'].values())
    res['teacher_calls'] = [len(c['args'][0]) for c in step.calls if c['who'] == 'teacher']
    res['student_calls'] = [[len(c['args'][0]), 'grad' if c['grad'] else 'no grad'] for c in step.calls
                            if c['who'] == 'student']
    if cuda:
        sync(); torch.cuda.reset_peak_memory_stats()
        step(); sync()
        res['peak_memory_bytes'] = torch.cuda.max_memory_allocated()

    times, parts, fns = [], {k: [] for k in PARTS}, part_fns(step, device_type)
    def time_parts(keep=True):
        for k, fn in fns.items():
            dt = timed(fn, block)
            if keep: parts[k].append(dt)
        step.distiller.opt.zero_grad(set_to_none=True)     # the replays' gradients must not reach the next step

    time_parts(keep=False)     # warm-up of the replays
    for _ in range(rounds):    # each round its steps, then its parts: drift in the machine's speed falls on both
        times.append(timed(step, block))
        time_parts()
    res.update(step_s=median(times), step_s_blocks=times, parts_s={k: median(v) for k, v in parts.items()},
               parts_s_blocks=parts)
    res['parts_sum_s'] = sum(res['parts_s'].values())
    res['step_over_parts'] = paired(times, [sum(ps) for ps in zip(*parts.values())])
    res['tflops_per_s'] = res['flops'] / res['step_s'] / 1e12

    sampling = sample_speed(step, args.sample_batch, args.ddim_steps, timed) if args.sample_batch else None
    profiled = None
    if args.profile:
        dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(args.mixed_precision, torch.float32)
        try: profiled = {**profile_step(step, args.profile, res['flops_by_op'], timed, cuda),
                         'matmul': matmul_rate(step.distiller.accelerator.device, dtype, timed)}
        except RuntimeError as e:       # (a profiler without CUPTI, say): the timings above still stand
            print(f'!! the profile failed, the other figures stand: {e}', file=sys.stderr)
            profiled = {'error': str(e)}

    net = getattr(teacher, 'net', None)
    out = {
        'command': 'python benchmarks/speed.py ' + shlex.join(sys.argv[1:] if argv is None else argv),
        'machine': {'device': torch.cuda.get_device_name() if cuda
                    else f'{platform.machine()} CPU ({os.cpu_count()} cores)',
                    'cores': os.cpu_count(), 'load_average_at_start': load, 'torch': torch.__version__,
                    'python': platform.python_version()},
        'config': {'teacher': args.teacher, 'cifar_scale': args.cifar_scale,
                   'teacher_params': sum(p.numel() for p in net.parameters()) if net is not None else None,
                   'batch_size': args.batch_size, 'lr': args.lr, 'mixed_precision': args.mixed_precision,
                   'compile': args.compile, 'cudagraphs': args.cudagraphs, 'steps': rounds * block, 'block': block,
                   'warmup': warmup, 'threads': step.threads},
        'step': res, 'sampling': sampling, 'profile': profiled,
    }
    if not cuda:
        out['peak_memory_bytes'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out['peak_memory_note'] = 'peak RSS of the whole process (sampling included): ru_maxrss'
    print(table(out))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f: json.dump(out, f, indent=1)
    return out

def table(r):
    "The results as a text table."
    c, s, m = r['config'], r['step'], r['machine']
    ms = lambda v: f'{v * 1e3:10.2f}'
    rows = [('step, median (ms)', ms(s['step_s'])),
            (f"  teacher calls, batches {s['teacher_calls']}", ms(s['parts_s']['teacher'])),
            ('  student forward, no grad', ms(s['parts_s']['student_forward'])),
            ('  student forward+backward', ms(s['parts_s']['student_forward_backward'])),
            ('  optimizer (clip, AdamW step)', ms(s['parts_s']['optimizer'])),
            ('  sum of the parts', ms(s['parts_sum_s'])),
            ('step / sum of parts (paired)', f"{s['step_over_parts']:10.3f}"),
            ('GFLOP a step', f"{s['flops'] / 1e9:10.2f}"),
            ('TFLOP/s achieved', f"{s['tflops_per_s']:10.3f}")]
    if 'peak_memory_bytes' in s: rows.append(('peak memory in a step (GB)', f"{s['peak_memory_bytes'] / 1e9:10.2f}"))
    w = max(len(x[0]) for x in rows)
    lines = [f"{m['device']}, threads {c['threads']}, torch {m['torch']}: teacher {c['teacher']} "
             f"({(c['teacher_params'] or 0) / 1e6:.2f}M parameters), batch {c['batch_size']}, mixed precision "
             f"{c['mixed_precision']}, compile {c['compile']}{' + CUDA graphs' if c.get('cudagraphs') else ''}, "
             f"{c['steps']} timed steps in blocks of {c['block']}"]
    lines += [f'{a:{w}} {b}' for a, b in rows]
    if 'peak_memory_bytes' in r:
        lines.append(f"peak memory (process RSS, whole run): {r['peak_memory_bytes'] / 1e9:.2f} GB")
    sp = r['sampling']
    if sp: lines.append(f"sampling, batch {sp['batch']}: one step {sp['one_step_samples_per_s']:.1f} samples/s, "
                        f"DDIM-{sp['ddim_steps']} {sp['ddim_samples_per_s']:.1f} samples/s: student one-step vs "
                        f"teacher DDIM-{sp['ddim_steps']} {sp['one_step_over_ddim']:.1f}x (paired)")
    if r.get('profile') and 'error' not in r['profile']: lines.append(profile_table(r['profile']))
    return '\n'.join(lines)

def profile_table(p):
    "The profile as a text table (also the benchmarks page's, in a code block)."
    m = p['matmul']
    ref = f"a {m['n']}x{m['n']} {m['dtype']} matmul"
    lines = [f"profile of {p['steps']} steps ({p['wall_s'] * 1e3:.1f} ms a step under the profiler); for scale, "
             f"{ref}: {m['flops_per_s'] / 1e9:.1f} GFLOP/s",
             f"{'':48} {'ms/step':>8} {'share':>6} {'GFLOP/step':>10} {'GFLOP/s':>8} {'of matmul':>9}"]
    for k, d in p['kinds'].items():
        rate = d['flops_per_s']
        lines.append(f"{k:48} {d['s'] * 1e3:8.1f} {d['share']:6.1%} {d['flops'] / 1e9:10.2f} "
                     + (f"{rate / 1e9:8.1f} {rate / m['flops_per_s']:9.0%}" if rate else f"{'-':>8} {'-':>9}"))
    return '\n'.join(lines)

def markdown(results):
    "A markdown table, one row per results dict (a speed.py JSON)."
    rows = ['| machine | teacher, batch | precision | step (ms) | step / parts | TFLOP/s | peak memory (GB) | '
            'student one-step vs teacher DDIM |', '|' + '---|' * 8]
    for r in results:
        c, s, sp = r['config'], r['step'], r['sampling']
        gb = s.get('peak_memory_bytes', r.get('peak_memory_bytes'))
        rows.append(f"| {r['machine']['device']}, {c['threads']} thread(s) | {c['teacher']}, {c['batch_size']} "
                    f"| {c['mixed_precision']}{', compile' if c['compile'] else ''}"
                    f"{' + CUDA graphs' if c.get('cudagraphs') else ''} | {s['step_s'] * 1e3:.1f} | "
                    f"{s['step_over_parts']:.2f} | {s['tflops_per_s']:.3g} | "
                    f"{gb / 1e9:.2f}{' (RSS)' if 'peak_memory_bytes' in r else ''} | "
                    + (f"{sp['one_step_samples_per_s']:.0f} vs {sp['ddim_samples_per_s']:.1f} samples/s, "
                       f"DDIM-{sp['ddim_steps']} ({sp['one_step_over_ddim']:.1f}x, batch {sp['batch']}) |" if sp
                       else '- |'))
    return '\n'.join(rows)

if __name__ == '__main__':
    main()
