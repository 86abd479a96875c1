"""Speed benchmark: one distillation step of Algorithm 1, today's (`boot_nb.train.Distiller.train_step`) beside the old
one.

The old step is a frozen copy, kept in this file, of `distill`'s inner loop and `BOOTLoss` as they were at commit
23b7ed6 (three teacher calls a step, float64 schedule math, `acc.reduce` + `bool(torch.isfinite(...))`: a host sync
every step; backward, gradient clipping, AdamW). Both steps run in the same process on their own copy of the teacher,
their blocks of steps interleaved (old, new, new, old, ...), so `new vs old` is a ratio measured side by side on a
machine whose speed drifts: the median over rounds of the ratio of a round's two blocks (not the ratio of the two
medians, which a machine that switches between two speeds can move by 10% either way). Global torch settings that either
side changes (threads, float32 matmul precision, cudnn.benchmark) are set back to that side's own before each of its
calls. The network code both call (the teacher's `predict`, `BOOTStudent`, the schedules) is the library's as it is now.

For each step it measures:
- `step_s`: the median over blocks of `--block` consecutive steps (time per step), after `--warmup` steps; on CUDA
  with `torch.cuda.synchronize` at both ends of a block;
- the parts measured alone, in blocks of the same size, each round's right after its steps: the teacher calls exactly as
  the step made them (recorded by a hook during one step: batch sizes, times, autocast), the student's no-grad forward,
  its forward+backward (at 2B), and the optimizer update (gradient clipping and AdamW's step); their sum and
  `step / parts`;
- FLOPs of one step (`torch.utils.flop_counter.FlopCounterMode`: matmuls, convolutions, attention) and achieved TFLOP/s;
- peak memory: CUDA `max_memory_allocated` during one step (both sides' weights and optimizer states are resident);
  on the CPU the process's peak RSS (`ru_maxrss`), for the whole run;
and, for the new student and the teacher, samples/s of one-step sampling and of DDIM with `--ddim-steps` steps
(interleaved). With `--profile N`, N more new steps under `torch.profiler`: the time a step spends by kind of op
(convolutions forward and backward, attention, matmuls, normalization, the other aten ops, and the rest: Python and
autograd between ops, or an idle GPU), their FLOP/s (FLOPs from the counter above), and, for scale, the FLOP/s of one
large matmul on the same device.

    python benchmarks/speed.py --teacher digits --threads 1 --json benchmarks/results/speed-cpu.json # README's run, CPU
    python benchmarks/speed.py --device cuda --teacher cifar10-sized --batch-size 128 --mixed-precision bf16 --compile

`--teacher` takes `digits` (the shipped teacher), `cifar10-sized` (`UNet2DModel` in google/ddpm-cifar10-32's layout,
35.7M parameters, random weights, its linear DDPM schedule, epsilon prediction, clip_sample) or a teacher folder
(`load_teacher`). Unconditional teachers only.
"""
import argparse, copy, importlib, json, math, os, platform, re, resource, shlex, statistics, sys, time
from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import torch

RUN_STEPS = 1500     # the README run's length: both sides' cosine learning rate decays over it

# ---------------------------------------------------------------------------------------------------------------------
# The old step, frozen: boot_nb.sampling / boot_nb.losses / boot_nb.train at commit 23b7ed6, the parts `distill` used
# with its defaults (L2, Heun, no r_min, unconditional). Copied so that later library changes do not move the baseline.

def per_sample(v, x): return v.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
def _at(fn, t, x): return per_sample(fn(t.double()), x)

def _ddim_ratio(schedule, t, s):
    t, s = t.double(), s.double()
    return 1 - schedule.alpha(t) * schedule.sigma(s) / (schedule.alpha(s) * schedule.sigma(t))

def _heun_coef(r): return torch.where(r > 0, 1 + r / torch.log1p(-r), torch.zeros_like(r))

def _heun_step(teacher, y_t, eps, t, s, cond):
    sch = teacher.schedule
    f_t = teacher(_at(sch.alpha, t, y_t) * y_t + _at(sch.sigma, t, y_t) * eps, t, cond)
    r = _ddim_ratio(sch, t, s)
    y_s = y_t + per_sample(r, y_t) * (f_t - y_t)
    heun = sch.sigma(s.double()) > 0
    if not bool(heun.any()): return y_s
    f_s = teacher(_at(sch.alpha, s, y_s) * y_s + _at(sch.sigma, s, y_s) * eps, s, cond)
    return y_s + per_sample(torch.where(heun, _heun_coef(r), 0.), y_t) * (f_s - f_t)

def _l2(a, b):
    dtype = torch.promote_types(a.dtype, torch.float32)
    return (a.to(dtype) - b.to(dtype)).pow(2).flatten(1).mean(1)

def _old_step_generator(seed, step, process=0, device=None):
    state = np.random.SeedSequence([seed, step, process]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 32 | int(state[1]))

class OldBOOTLoss:
    "BOOTLoss(delta, t_min, t_max, beta, 'heun', l2) at 23b7ed6."
    def __init__(self, delta, t_min, t_max, beta):
        self.delta, self.t_min, self.t_max, self.beta, self._floor = delta, t_min, t_max, beta, (None, None)

    def r_floor(self, schedule):
        if self._floor[0] is not schedule:
            t = torch.linspace(min(self.t_min + self.delta, self.t_max), self.t_max, 1001, dtype=torch.float64)
            self._floor = schedule, _ddim_ratio(schedule, t, (t - self.delta).clamp_min(self.t_min)).min().item()
        return self._floor[1]

    def __call__(self, student, teacher, eps, cond=None, generator=None):
        t = self.t_max - (self.t_max - self.t_min) * torch.rand(len(eps), generator=generator, device=eps.device)
        s = (t - self.delta).clamp_min(self.t_min)
        with torch.no_grad():
            y_t = student(eps, t, cond)
            y_t = y_t.to(torch.promote_types(y_t.dtype, torch.float32))
            target_s = torch.where((s < t).reshape(-1, *[1] * (y_t.ndim - 1)),
                                   _heun_step(teacher, y_t, eps, t, s, cond), y_t)
            t_max = torch.full((len(eps),), float(self.t_max), device=eps.device)
            target_max = teacher(eps, t_max, cond)
        y_s, y_max = student(torch.cat([eps, eps]), torch.cat([s, t_max]),
                             None if cond is None else torch.cat([cond, cond])).chunk(2)
        d = _l2(y_s, target_s)
        bs = (_ddim_ratio(teacher.schedule, t, s).clamp_min(self.r_floor(teacher.schedule)).pow(-2).to(d.dtype) *
              d).mean()
        bc = _l2(y_max, target_max).mean()
        return {'loss': bs + self.beta * bc, 'bs': bs, 'bc': bc}

class OldStep:
    """`distill`'s inner loop at 23b7ed6 (without its logging and progress bar), with the same attributes as a
    `Distiller`."""
    def __init__(self, teacher, *, batch_size, lr=None, mixed_precision='no', device='cpu', seed=0, steps=RUN_STEPS,
                 delta=0.15, beta=1., grad_clip=1., weight_decay=0.):
        from accelerate import Accelerator
        from boot_nb.student import default_t_max, make_student
        self.accelerator = acc = Accelerator(cpu=device == 'cpu', mixed_precision=mixed_precision)
        teacher.to(acc.device).eval().requires_grad_(False)
        t_min = max(0.002, 1 / getattr(teacher.schedule, 'num_train_timesteps', 500))
        student = make_student(teacher, None, t_min, default_t_max(teacher), None, None).to(acc.device)
        self.lr = lr if lr is not None else 1e-4
        self.teacher, self.loss = teacher, OldBOOTLoss(delta, t_min, default_t_max(teacher), beta)
        self.config = SimpleNamespace(grad_clip=grad_clip)
        self.batch_size, self.seed, self.steps = batch_size, seed, steps
        self.student, self.opt = acc.prepare(student, torch.optim.AdamW(student.parameters(), lr=self.lr,
                                                                        weight_decay=weight_decay))

    def train_step(self, step):
        acc, student, opt, teacher = self.accelerator, self.student, self.opt, self.teacher
        student.train()
        g = _old_step_generator(self.seed, step, acc.process_index, acc.device)
        eps = torch.randn(self.batch_size, *teacher.sample_shape, generator=g, device=acc.device)
        with acc.autocast():
            out = self.loss(student, teacher, eps, None, generator=g)
        vals = acc.reduce(torch.stack([out['loss'], out['bs'], out['bc']]).detach().float(), 'mean')
        if not bool(torch.isfinite(vals).all()):
            raise FloatingPointError(f'Non-finite loss at step {step + 1} of the old step.')
        acc.backward(out['loss'])
        if self.config.grad_clip: acc.clip_grad_norm_(student.parameters(), self.config.grad_clip)
        for group in opt.param_groups: group['lr'] = self.lr * 0.5 * (1 + math.cos(math.pi * step / self.steps))
        opt.step(); opt.zero_grad(set_to_none=True)
        return vals

# ---------------------------------------------------------------------------------------------------------------------

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

def new_step(teacher, args):
    """The step as the library makes it now; without --threads, on the thread count `distill` would choose (the old used
    torch's)."""
    from boot_nb.train import DistillConfig, Distiller, cpu_threads
    d = Distiller(teacher, config=DistillConfig(batch_size=args.batch_size, lr=args.lr,
                                                mixed_precision=args.mixed_precision, compile=args.compile,
                                                cpu=args.device == 'cpu', steps=RUN_STEPS, threads=args.threads))
    with cpu_threads(d.config, d.accelerator.device) as n: pass
    torch.set_num_threads(n)
    return d

_GLOBALS = {'threads': (torch.get_num_threads, torch.set_num_threads),
            'float32_matmul_precision': (torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
            'cudnn.benchmark': (lambda: torch.backends.cudnn.benchmark,
                                lambda v: setattr(torch.backends.cudnn, 'benchmark', v))}

class Side:
    "One of the two steps, its global torch settings, its step counter and what was measured of it."
    def __init__(self, name, step, settings, begin=None):
        self.name, self.step, self.settings, self.next, self.calls = name, step, settings, 0, []
        # before each step and each part: a new iteration of CUDA graphs (--cudagraphs)
        self.begin = begin or (lambda: None)

    def enter(self):
        for k, (get, put) in _GLOBALS.items():
            if get() != self.settings[k]: put(self.settings[k])

    def train_step(self):
        self.enter(); self.begin()
        out = self.step.train_step(self.next)
        self.next += 1
        return out

def _settings(): return {k: get() for k, (get, _) in _GLOBALS.items()}

def _module(obj, what):
    if not isinstance(obj, torch.nn.Module):
        raise TypeError(f'speed.py records the {what} calls of a step with a hook, so the {what} must be an nn.Module, '
                        f'got {type(obj).__name__}.')
    return obj

def record_calls(side, device_type):
    "One step with hooks on the side's teacher and student: each call's arguments, grad mode and autocast state."
    calls = []
    def hook(who):
        def pre(module, args, kwargs):
            ac = torch.is_autocast_enabled(device_type)
            calls.append(dict(who=who, grad=torch.is_grad_enabled(),
                              autocast=(ac, torch.get_autocast_dtype(device_type) if ac else None),
                              args=tuple(a.detach().clone() if torch.is_tensor(a) else a for a in args),
                              kwargs=dict(kwargs)))
        return pre
    handles = [_module(m, who).register_forward_pre_hook(hook(who), with_kwargs=True)
               for who, m in (('teacher', side.step.teacher), ('student', side.step.student))]
    try: out = side.train_step()
    finally:
        for h in handles: h.remove()
    return calls, out

def part_fns(side, device_type):
    "The step's parts as functions that each run one step's worth of that part alone."
    st = side.step
    def call(c, module):
        on, dtype = c['autocast']
        with torch.set_grad_enabled(c['grad']), torch.autocast(device_type, dtype) if on else nullcontext():
            return module(*c['args'], **c['kwargs'])
    teacher = [c for c in side.calls if c['who'] == 'teacher']
    nograd = [c for c in side.calls if c['who'] == 'student' and not c['grad']]
    grad = [c for c in side.calls if c['who'] == 'student' and c['grad']]
    params = [p for p in st.student.parameters() if p.requires_grad]
    def teacher_part():
        side.begin()
        for c in teacher: call(c, st.teacher)
    def nograd_part():
        side.begin()
        for c in nograd: call(c, st.student)
    def grad_part():
        side.begin()
        for c in grad: call(c, st.student).float().square().mean().backward()
    def optimizer_part():
        # the gradients of grad_part stay in place so that every repeat updates all parameters
        if st.config.grad_clip: st.accelerator.clip_grad_norm_(params, st.config.grad_clip)
        st.opt.step()
    return {'teacher': teacher_part, 'student_forward': nograd_part, 'student_forward_backward': grad_part,
            'optimizer': optimizer_part}

def count_flops(side, device_type, compiled):
    """FLOPs of one step by op, run eagerly (a compiled step computes the same), with its teacher and student calls
    recorded."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc, torch.compiler.set_stance('force_eager') if compiled else nullcontext():
        side.calls, _ = record_calls(side, device_type)
    if not any(c['who'] == 'teacher' for c in side.calls):
        raise RuntimeError(f'The {side.name} step made no call teacher(x_t, t, cond) that the hook saw, so its teacher '
                           'part cannot be replayed: speed.py needs the loss to call the teacher object itself '
                           '(`step.teacher`).')
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

def profile_step(side, steps, flops_by_op, timed, cuda):
    """Where `steps` steps of `side` spend their time, by KINDS: self time of aten ops (CUDA: their kernels' device
    time) per step."""
    from torch.profiler import ProfilerActivity, profile
    side.enter()
    with profile(activities=[ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda) as prof:
        wall = timed(side.train_step, steps)
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

def paired_speedup(old_blocks, new_blocks):
    """new vs old: the median over rounds of old block / new block; each round's two blocks ran back to back, at one
    machine speed."""
    return median([o / n for o, n in zip(old_blocks, new_blocks, strict=True)])

def sample_speed(side, batch, ddim_steps, timed):
    """Samples/s of the side's student in one step and of its teacher's DDIM, from the same noise, under the same
    autocast."""
    from boot_nb.sampling import ddim_sample, one_step_sample
    side.enter()
    acc, teacher = side.step.accelerator, side.step.teacher
    student = acc.unwrap_model(side.step.student).eval()
    noise = torch.randn(batch, *teacher.sample_shape, generator=torch.Generator().manual_seed(0)).to(acc.device)
    with acc.autocast():
        one_step, ddim = lambda: one_step_sample(student, noise), lambda: ddim_sample(teacher, noise, ddim_steps)
        # warm-up (and compile) at this batch
        timed(one_step, 1); timed(lambda: ddim_sample(teacher, noise, 1), 1)
        one, many = [], []
        for _ in range(3):       # interleaved, as the steps are
            many.append(timed(ddim, 1)); one += [timed(one_step, 1) for _ in range(3)]
    one_s, ddim_s = median(one), median(many)
    return {'batch': batch, 'ddim_steps': ddim_steps, 'one_step_s': one_s, 'ddim_s': ddim_s,
            'one_step_samples_per_s': batch / one_s, 'ddim_samples_per_s': batch / ddim_s,
            'one_step_over_ddim': (batch / one_s) / (batch / ddim_s)}

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
    p.add_argument('--compile', action='store_true',
                   help='compile the new step (DistillConfig(compile=True)); the old one never is')
    p.add_argument('--cudagraphs', action='store_true',
                   help="with --compile on CUDA: inductor's CUDA graphs (what torch.compile's mode='reduce-overhead' "
                        "turns on), "
                        'replayed from a new iteration at each step; an experiment on a host-bound step, not a library '
                        'option')
    p.add_argument('--steps', type=int, default=20, help='timed steps of each side (default 20)')
    p.add_argument('--block', type=int, default=None, help='steps per timed block (default: 1 on the CPU, 5 on CUDA)')
    p.add_argument('--warmup', type=int, default=None,
                   help='untimed steps of each side first (default 3, 6 with --compile)')
    p.add_argument('--threads', type=int, default=None,
                   help="torch's CPU threads, both sides (default: each as its code chooses: the old torch's own, the "
                        "new as distill does)")
    p.add_argument('--cifar-scale', type=float, default=1.,
                   help="cifar10-sized's channel widths times this (default 1; less for a quick check)")
    p.add_argument('--sample-batch', type=int, default=256,
                   help='batch of the one-step and DDIM sampling timings (default 256; 0: skip them)')
    p.add_argument('--ddim-steps', type=int, default=50)
    p.add_argument('--profile', type=int, default=0, metavar='N',
                   help='then profile N new steps: time and FLOP/s by kind of op, beside a large matmul (default 0: no '
                        'profile)')
    p.add_argument('--json', default=None, help='write the results here')
    p.add_argument('--markdown', nargs='+', metavar='JSON',
                   help="print the README's table of these results files, run nothing")
    args = p.parse_args(argv)
    if args.markdown: return print(markdown([json.load(open(f)) for f in args.markdown]))
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else None      # other work on the machine, as the run starts
    if args.threads is not None: torch.set_num_threads(args.threads)
    cuda = args.device == 'cuda'
    if cuda and not torch.cuda.is_available(): p.error('--device cuda, but torch sees no CUDA device.')
    if args.profile and args.compile:
        p.error("--profile sorts a step's time by aten op, and a compiled step runs its own kernels instead: profile "
                "without --compile.")
    if args.cudagraphs and args.sample_batch:
        p.error('--cudagraphs times the steps only (DDIM feeds a graph its own outputs): add --sample-batch 0.')
    if args.cudagraphs and not (args.compile and cuda):
        p.error('--cudagraphs needs --compile and --device cuda (CUDA graphs are a GPU feature).')
    if args.batch_size is None: args.batch_size = 32 if args.teacher == 'digits' else 128
    if args.lr is None and args.teacher == 'digits': args.lr = 1e-3
    block = args.block or (5 if cuda else 1)
    rounds = max(1, math.ceil(args.steps / block))
    warmup = args.warmup if args.warmup is not None else (6 if args.compile else 3)
    device_type = 'cuda' if cuda else 'cpu'
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    from diffusers.utils import logging as dlogging
    dlogging.disable_progress_bar()
    teacher = make_teacher(args.teacher, args.cifar_scale)
    # each side its own teacher: whatever the new step does to its teacher (channels_last, compile) stays on its side
    teachers = {'old': copy.deepcopy(teacher), 'new': teacher}
    old = Side('old', OldStep(teachers['old'], batch_size=args.batch_size, lr=args.lr,
                              mixed_precision=args.mixed_precision, device=args.device), _settings())
    if args.cudagraphs:     # compiled code only: the old step is never compiled
        importlib.import_module('torch._inductor.config').triton.cudagraphs = True
    new_ = new_step(teachers['new'], args)
    new = Side('new', new_, _settings(), torch.compiler.cudagraph_mark_step_begin if args.cudagraphs else None)
    sides = (old, new)

    def timed(fn, n):
        sync(); t0 = time.perf_counter()
        for _ in range(n): fn()
        sync(); return (time.perf_counter() - t0) / n

    for _ in range(warmup):
        for s in sides: s.train_step()
    res = {s.name: {} for s in sides}
    for s in sides:
        res[s.name]['flops_by_op'] = count_flops(s, device_type, args.compile and s is new)
        res[s.name]['flops'] = sum(res[s.name]['flops_by_op'].values())
        res[s.name]['teacher_calls'] = [len(c['args'][0]) for c in s.calls if c['who'] == 'teacher']
        res[s.name]['student_calls'] = [[len(c['args'][0]), 'grad' if c['grad'] else 'no grad'] for c in s.calls
                                        if c['who'] == 'student']
    if cuda:
        for s in sides:
            sync(); torch.cuda.reset_peak_memory_stats()
            s.train_step(); sync()
            res[s.name]['peak_memory_bytes'] = torch.cuda.max_memory_allocated()

    times = {s.name: [] for s in sides}
    parts = {s.name: {k: [] for k in ('teacher', 'student_forward', 'student_forward_backward', 'optimizer')}
             for s in sides}
    fns = {s.name: part_fns(s, device_type) for s in sides}

    def time_parts(s, keep=True):
        s.enter()
        for k, fn in fns[s.name].items():
            dt = timed(fn, block)
            if keep: parts[s.name][k].append(dt)
        s.step.opt.zero_grad(set_to_none=True)     # the replays' gradients must not reach the next step

    for s in sides: time_parts(s, keep=False)     # warm-up of the replays
    # each round: steps, then parts, old, new / new, old: drift in the machine's speed falls on both sides and on both
    # figures
    for r in range(rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for s in order: times[s.name].append(timed(s.train_step, block))
        for s in order: time_parts(s)
    for s in sides:
        d = res[s.name]
        d['step_s'], d['step_s_blocks'] = median(times[s.name]), times[s.name]
        d['parts_s'] = {k: median(v) for k, v in parts[s.name].items()}
        d['parts_s_blocks'] = parts[s.name]
        d['parts_sum_s'] = sum(d['parts_s'].values())
        d['step_over_parts'] = d['step_s'] / d['parts_sum_s']
        d['tflops_per_s'] = d['flops'] / d['step_s'] / 1e12

    sampling = sample_speed(new, args.sample_batch, args.ddim_steps, timed) if args.sample_batch else None
    profiled = None
    if args.profile:
        dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(args.mixed_precision, torch.float32)
        try: profiled = {**profile_step(new, args.profile, res['new']['flops_by_op'], timed, cuda),
                         'matmul': matmul_rate(new_.accelerator.device, dtype, timed)}
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
                   'warmup': warmup, 'threads': {s.name: s.settings['threads'] for s in sides}},
        'old': res['old'], 'new': res['new'],
        'new_vs_old_speedup': paired_speedup(res['old']['step_s_blocks'], res['new']['step_s_blocks']),
        'sampling': sampling,
        'profile': profiled,
    }
    if not cuda:
        out['peak_memory_bytes'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out['peak_memory_note'] = 'peak RSS of the whole process (both sides, sampling included): ru_maxrss'
    print(table(out))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f: json.dump(out, f, indent=1)
    return out

def table(r):
    "The results as a text table."
    c, o, n = r['config'], r['old'], r['new']
    ms = lambda v: f'{v * 1e3:10.2f}'
    rows = [('step, median (ms)', ms(o['step_s']), ms(n['step_s']), f"{r['new_vs_old_speedup']:.2f}x faster"),
            (f"  teacher calls, batches {o['teacher_calls']} / {n['teacher_calls']}", ms(o['parts_s']['teacher']),
             ms(n['parts_s']['teacher']), ''),
            ('  student forward, no grad', ms(o['parts_s']['student_forward']), ms(n['parts_s']['student_forward']),
             ''),
            ('  student forward+backward', ms(o['parts_s']['student_forward_backward']),
             ms(n['parts_s']['student_forward_backward']), ''),
            ('  optimizer (clip, AdamW step)', ms(o['parts_s']['optimizer']), ms(n['parts_s']['optimizer']), ''),
            ('  sum of the parts', ms(o['parts_sum_s']), ms(n['parts_sum_s']), ''),
            ('step / sum of parts', f"{o['step_over_parts']:10.3f}", f"{n['step_over_parts']:10.3f}", ''),
            ('GFLOP a step', f"{o['flops'] / 1e9:10.2f}", f"{n['flops'] / 1e9:10.2f}", ''),
            ('TFLOP/s achieved', f"{o['tflops_per_s']:10.3f}", f"{n['tflops_per_s']:10.3f}", '')]
    if 'peak_memory_bytes' in o:
        rows.append(('peak memory in a step (GB)', f"{o['peak_memory_bytes'] / 1e9:10.2f}",
                     f"{n['peak_memory_bytes'] / 1e9:10.2f}", ''))
    w = max(len(x[0]) for x in rows)
    m = r['machine']
    th = c['threads']
    lines = [f"{m['device']}, threads {th['old']} (old) / {th['new']} (new), torch {m['torch']}: teacher "
             f"{c['teacher']} ({(c['teacher_params'] or 0) / 1e6:.2f}M parameters), batch {c['batch_size']}, mixed "
             f"precision {c['mixed_precision']}, compile "
             f"{c['compile']}{' + CUDA graphs' if c.get('cudagraphs') else ''}, {c['steps']} timed steps in blocks of "
             f"{c['block']}",
             f"{'':{w}} {'old step':>10} {'new step':>10}   new vs old"]
    lines += [f'{a:{w}} {b} {d}   {e}' for a, b, d, e in rows]
    if 'peak_memory_bytes' in r:
        lines.append(f"peak memory (process RSS, whole run): {r['peak_memory_bytes'] / 1e9:.2f} GB")
    s = r['sampling']
    if s: lines.append(f"sampling, batch {s['batch']}: one step {s['one_step_samples_per_s']:.1f} samples/s, "
                       f"DDIM-{s['ddim_steps']} "
                 f"{s['ddim_samples_per_s']:.1f} samples/s: {s['one_step_over_ddim']:.1f}x")
    if r.get('profile') and 'error' not in r['profile']: lines.append(profile_table(r['profile']))
    return '\n'.join(lines)

def profile_table(p):
    "The profile as a text table (also the README's, in a code block)."
    m = p['matmul']
    ref = f"a {m['n']}x{m['n']} {m['dtype']} matmul"
    lines = [f"profile of {p['steps']} new steps ({p['wall_s'] * 1e3:.1f} ms a step under the profiler); for scale, "
             f"{ref}: {m['flops_per_s'] / 1e9:.1f} GFLOP/s",
             f"{'':48} {'ms/step':>8} {'share':>6} {'GFLOP/step':>10} {'GFLOP/s':>8} {'of matmul':>9}"]
    for k, d in p['kinds'].items():
        rate = d['flops_per_s']
        lines.append(f"{k:48} {d['s'] * 1e3:8.1f} {d['share']:6.1%} {d['flops'] / 1e9:10.2f} "
                     + (f"{rate / 1e9:8.1f} {rate / m['flops_per_s']:9.0%}" if rate else f"{'-':>8} {'-':>9}"))
    return '\n'.join(lines)

def markdown(results):
    "A markdown table, one row per results dict (a speed.py JSON)."
    gb = lambda r: r['new'].get('peak_memory_bytes', r.get('peak_memory_bytes'))
    rows = ['| machine | teacher, batch | precision | old step (ms) | new step (ms) | new vs old | new step / parts | '
            'new TFLOP/s | peak memory (GB) | one step vs DDIM |', '|' + '---|' * 10]
    for r in results:
        c, o, n, s = r['config'], r['old'], r['new'], r['sampling']
        rows.append(f"| {r['machine']['device']}, {c['threads']['new']} thread(s) | {c['teacher']}, {c['batch_size']} "
                    f"| {c['mixed_precision']}{', compile' if c['compile'] else ''}"
                    f"{' + CUDA graphs' if c.get('cudagraphs') else ''} | {o['step_s'] * 1e3:.1f} | "
                    f"{n['step_s'] * 1e3:.1f} | "
                    f"{r['new_vs_old_speedup']:.2f}x | {n['step_over_parts']:.2f} | {n['tflops_per_s']:.3g} | "
                    f"{gb(r) / 1e9:.2f}{' (RSS)' if 'peak_memory_bytes' in r else ''} | "
                    + (f"{s['one_step_samples_per_s']:.0f} vs {s['ddim_samples_per_s']:.1f} samples/s, "
                       f"DDIM-{s['ddim_steps']} ({s['one_step_over_ddim']:.1f}x, batch {s['batch']}) |" if s
                       else '- |'))
    return '\n'.join(rows)

if __name__ == '__main__':
    main()
