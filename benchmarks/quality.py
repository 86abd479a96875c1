"""Quality benchmark: one-step BOOT students against the teacher's DDIM with 1, 2, 4, 10 and 20 steps.

Distils exact teachers (a 2-D and an 8-D Gaussian mixture, the optimal denoiser of 256 sklearn digits) into a small MLP
student, and the shipped digits UNet teacher into a copy of itself, with `distill`'s default BOOT settings (delta,
solver, beta; only the number of steps, the batch size, the student's size and, for the UNet, the learning rate are
chosen here, to fit a 2-core CPU; t_max is distill's default). For each case it measures, on fixed noise
(`boot_nb.quality.compare_to_ddim`):

- `endpoint`: the mean L2 distance of each sample to the teacher's ODE endpoint from the same noise (Heun, many steps);
- a distribution distance to the data: MMD (`boot_nb.metrics.mmd`) for the exact teachers, and the Frechet distance of
  the digit classifier's features (`boot_nb.metrics.frechet_distance` / `boot_nb.digits.digit_features`) for the digit
  teachers.

It prints a table per case and writes `benchmarks/results/quality.json` (or `--out`), then the README's results table.
A case's target names the DDIM baseline the one-step student must beat on both numbers (the shipped v-prediction UNet:
on FD). Run from the repository root:

    python benchmarks/quality.py --threads 2          # all cases, about 30 minutes on 2 CPU cores
    python benchmarks/quality.py --cases gmm2d gmm8d  # some of them

`--budgets 1 2 4 8` measures instead how quality grows with training: each case trains once with a constant learning
rate and is evaluated after 1x, 2x, ... its steps (with a constant rate, resuming to more steps continues the very run a
longer one would make, so each row is what a run of that budget gives). It writes `benchmarks/results/budget.json`, a
markdown table and `budget.png` (quality against training samples, the teacher's DDIM-k as horizontal lines):

    python benchmarks/quality.py --cases digits-unet --budgets 1 2 4 --out benchmarks/results/budget.json

Long budgets can take several sittings: with `--run-dir DIR` each case's run stays in DIR/<case> with the points
measured so far, and the same command started again (after a kill, or with more budgets) resumes it exactly from its
last checkpoint and trains only what it has not measured.

Two references tell where a budget curve could go. `--fixed-point` measures, without training, the endpoint of the
bootstrapping loss's exact minimiser (the teacher's own chain of delta steps) for several delta: the floor that delta
and the solver set. `--regression PAIRS` (with `--budgets`) trains the same student with the same optimiser by
regression on PAIRS teacher ODE endpoints instead of BOOT: what this student reaches in that many steps when it is
given the answers for PAIRS noises (a small pool is learnt by heart: each point also reports `endpoint_on_pairs`).
`--beside JSON` draws another budget run's curves in the same figure; `--replot` redraws --out's without training.

    python benchmarks/quality.py --cases digits-unet digits-unet-eps --fixed-point
    python benchmarks/quality.py --cases digits-unet --budgets 1 2 4 8 --regression 8192 --set ema_decay=0.999 \\
        --run-dir benchmarks/runs/regression --out benchmarks/results/budget-regression.json \\
        --beside benchmarks/results/budget-ema-16x.json
"""
import argparse, json, platform, tempfile, time
from pathlib import Path

import torch

from boot_nb.exact import EXACT_TEACHERS
from boot_nb.digits import digit_features
from boot_nb.quality import compare_to_ddim, quality_table
from boot_nb.student import MLPStudent
from boot_nb.train import distill

DDIM_STEPS = (1, 2, 4, 10, 20)
STUDENT = 'BOOT student, 1 step'


def shipped_digits():
    from boot_nb.teachers import load_teacher
    return load_teacher('digits')


class EpsFromV(torch.nn.Module):
    """A v-prediction UNet as an exact epsilon-prediction network on another schedule: the timestep of equal log-SNR,
    eps = a v + s x."""
    def __init__(self, unet, schedule, new_schedule):
        super().__init__()
        self.unet, self.schedule, self.new_schedule, self.config = unet, schedule, new_schedule, unet.config

    def forward(self, x, timestep, **kwargs):
        from diffusers.models.unets.unet_2d import UNet2DOutput
        t = self.new_schedule.t_of_timestep(timestep.double())
        v = self.unet(x, self.schedule.timestep(self.schedule.t_of_log_alpha2(self.new_schedule.log_alpha2(t))).float(),
                      **kwargs).sample
        a, s = (g(t).to(x).reshape(-1, 1, 1, 1) for g in (self.new_schedule.alpha, self.new_schedule.sigma))
        return UNet2DOutput(sample=a * v + s * x)


def shipped_digits_eps(beta_schedule='linear'):
    """The shipped digits teacher as an epsilon-prediction teacher on a diffusers DDPM schedule: 'linear' (as
    google/ddpm-cifar10-32) or 'squaredcos_cap_v2' (as DeepFloyd IF)."""
    import diffusers
    from boot_nb.schedules import DiscreteSchedule
    from boot_nb.teachers import DiffusersTeacher
    v = shipped_digits()
    new = DiscreteSchedule.from_scheduler(diffusers.DDPMScheduler(num_train_timesteps=1000,
                                                                  beta_schedule=beta_schedule))
    return DiffusersTeacher(EpsFromV(v.net, v.schedule, new), new, 'epsilon')


# name: teacher, student (None: a copy of the teacher), training steps, batch and learning rate (None: distill's
# default), samples and Heun steps for the reference, distribution metric, and the DDIM baseline to beat. The UNet case
# is the README's command; its lr was chosen on it (1500 steps of 32, FD of the one-step student): 1e-4 (the default for
# a copy) 44, 3e-4 31, 1e-3 26. The eps cases are the same teacher (the same x0 predictions, to 1e-6) as an
# epsilon-prediction network on the linear DDPM schedule (the kind of google/ddpm-cifar10-32) and on the cosine schedule
# of DeepFloyd IF; their copies use the default t_max where the gain of eq. (1) is 10 (`boot_nb.student`).
CASES = {
    'gmm2d': dict(title='2-D mixture', teacher=EXACT_TEACHERS['gmm2d'], student=dict(hidden=256, depth=4), steps=4000,
                  batch_size=256, n=2000, ref_steps=200, metric='mmd', target='DDIM-4'),
    'gmm8d': dict(title='8-D mixture', teacher=EXACT_TEACHERS['gmm8d'], student=dict(hidden=256, depth=4), steps=4000,
                  batch_size=256, n=2000, ref_steps=200, metric='mmd', target='DDIM-10'),
    'digits256': dict(title='256 digits (64-D)', teacher=EXACT_TEACHERS['digits-exact'],
                      student=dict(hidden=256, depth=4), steps=3000, batch_size=256, n=1000, ref_steps=200, metric='fd',
                      target='DDIM-2'),
    'digits-unet': dict(title='shipped digits UNet (16x16)', teacher=shipped_digits, student=None, steps=1500,
                        batch_size=32, lr=1e-3, n=500, ref_steps=50, metric='fd', target='DDIM-4', target_on=('fd',)),
    'digits-unet-eps': dict(title='the same UNet, as epsilon-prediction (linear schedule)', teacher=shipped_digits_eps,
                            student=None, steps=1500, batch_size=32, lr=1e-3, n=500, ref_steps=50, metric='fd',
                            target='DDIM-4'),
    'digits-unet-eps-cos': dict(title='the same UNet, as epsilon-prediction (cosine schedule)',
                                teacher=lambda: shipped_digits_eps('squaredcos_cap_v2'), student=None, steps=1500,
                                batch_size=32, lr=1e-3, n=500, ref_steps=50, metric='fd', target='DDIM-4'),
}


def evaluate(teacher, student, case, seed, teacher_runs=None):
    "`compare_to_ddim` rows of `student` on the case's fixed noise (seed + 1) and data (`teacher_runs`: its cache)."
    g = torch.Generator().manual_seed(seed + 1)
    n = case['n']
    eps = torch.randn(n, *teacher.sample_shape, generator=g)
    data = teacher.sample(n, generator=g) if hasattr(teacher, 'sample') else _digit_data(n, teacher)
    return compare_to_ddim(teacher, student, eps, data=data,
                           features=digit_features if case['metric'] == 'fd' else None, ddim_steps=DDIM_STEPS,
                           ref_steps=case['ref_steps'], batch_size=n, teacher_runs=teacher_runs)


def _start(case, seed):
    teacher = case['teacher']()
    torch.manual_seed(seed)
    return teacher, None if case['student'] is None else MLPStudent(teacher.sample_shape, **case['student'])


def run_case(name, case, seed=0, steps_scale=1., settings={}, eval_seed=None):
    print(f'\n== {name}', flush=True)
    teacher, student = _start(case, seed)
    steps = max(1, round(case['steps'] * steps_scale))
    t0, c0 = time.time(), time.process_time()
    with tempfile.TemporaryDirectory() as out:
        student = distill(teacher, student, out_dir=out, checkpoint_every=steps, sample_every=0, progress=False,
                          **{'steps': steps, 'batch_size': case['batch_size'], 'lr': case.get('lr'), 'seed': seed,
                             **settings})
    train = {'wall_s': round(time.time() - t0, 1), 'cpu_s': round(time.process_time() - c0, 1)}
    rows = evaluate(teacher, student, case, seed if eval_seed is None else eval_seed)
    print(quality_table(rows))
    by = {r['method']: r for r in rows}
    on = case.get('target_on', ('endpoint', case['metric']))
    margins = {c: by[f'teacher {case["target"]}'][c] - by[STUDENT][c] for c in on}
    met = all(m > 0 for m in margins.values())
    print(f'target: beat {case["target"]} on {", ".join(on)}: {"met" if met else "MISSED"} '
          f'(baseline minus student: {", ".join(f"{c} {m:+.4g}" for c, m in margins.items())}); '
          f'training {steps} steps took {train["wall_s"]} s wall, {train["cpu_s"]} s CPU', flush=True)
    return {'steps': steps, 'batch_size': settings.get('batch_size', case['batch_size']), 'settings': settings,
            'student': case['student'] or 'copy of the teacher', 't_max': student.t_max, 'samples': case['n'],
            'reference': f'Heun, {case["ref_steps"]} steps', 'training': train, 'rows': rows, 'target': case['target'],
            'target_on': list(on), 'margins': margins, 'met': met}


def _digit_data(n, teacher):
    "Real digits at the teacher's resolution, for teachers without a `sample` (the shipped UNet)."
    from boot_nb.exact import digits
    x, _ = digits(teacher.sample_shape[-1])
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n]]


def readme_table(results):
    "The README's results table: for each case and metric, DDIM-k beside the one-step student."
    lines = ['| teacher | metric | ' + ' | '.join(f'DDIM-{k}' for k in DDIM_STEPS) + ' | **BOOT, 1 step** | target |',
             '|---|---|' + '---|' * (len(DDIM_STEPS) + 2)]
    for name, r in results['cases'].items():
        by = {row['method']: row for row in r['rows']}
        for metric in [c for c in ('endpoint', 'fd', 'mmd') if c in r['rows'][0]]:
            target = f'beat {r["target"]}: {"met" if r["met"] else "missed"}' if metric in r['target_on'] else ''
            lines.append(f'| {CASES[name]["title"]} | {metric} | ' +
                         ' | '.join(f'{by[f"teacher DDIM-{k}"][metric]:.3g}' for k in DDIM_STEPS)
                         + f' | **{by[STUDENT][metric]:.3g}** | {target} |')
    return '\n'.join(lines)


def run_budgets(name, case, budgets, seed=0, steps_scale=1., settings={}, run_dir=None):
    """One constant-lr run of `case`, evaluated after each budget (a multiple of the case's steps), resuming between
    them. With `run_dir` the run's folder is kept there with the points measured so far (points.json): started again,
    a killed or finished run goes on from its last checkpoint to the budgets it has not measured yet."""
    print(f'\n== {name}: budgets {budgets} x {case["steps"]} steps', flush=True)
    teacher, student = _start(case, seed)
    base, t0 = max(1, round(case['steps'] * steps_scale)), time.time()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(run_dir) / name if run_dir else Path(tmp)
        saved = out / 'points.json'
        points = json.loads(saved.read_text()) if saved.exists() else []
        done, offset = {p['budget'] for p in points}, points[-1]['wall_s'] if points else 0.
        rows = None
        for b in sorted(budgets):
            if b in done: continue
            steps = round(base * b)
            student = distill(teacher, student, steps=steps, batch_size=case['batch_size'], lr=case.get('lr'),
                              seed=seed, out_dir=out, lr_schedule='constant', checkpoint_every=base, sample_every=0,
                              progress=False, resume=bool(points) or (out / 'checkpoints').exists(), **settings)
            rows = evaluate(teacher, student, case, seed)
            by = {r['method']: r for r in rows}
            points.append({'budget': b, 'steps': steps, 'samples': steps * case['batch_size'],
                           'wall_s': round(offset + time.time() - t0, 1), 'student': by[STUDENT]})
            if run_dir:               # written whole or not at all: a kill leaves the last complete list
                tmp_file = saved.with_suffix('.tmp'); tmp_file.write_text(json.dumps(points, indent=1))
                tmp_file.replace(saved)
            print(f'{b:g}x ({steps} steps): ' +
                  ', '.join(f'{k} {v:.4g}' for k, v in by[STUDENT].items() if isinstance(v, float)), flush=True)
        if rows is None:            # every budget measured before: the saved student, for the teacher's rows
            from boot_nb.student_files import load_student
            student = load_student(out / 'student')
            rows = evaluate(teacher, student, case, seed)
    return {'steps': base, 'batch_size': case['batch_size'], 'lr': case.get('lr'), 'lr_schedule': 'constant',
            'settings': settings, 't_max': student.t_max, 'samples': case['n'],
            'teacher': [r for r in rows if r['method'] != STUDENT], 'points': sorted(points, key=lambda p: p['budget'])}


def run_regression(name, case, budgets, seed=0, steps_scale=1., settings={}, run_dir=None, pool=8192):
    """The same student and optimiser as `run_budgets`, trained instead by regression on the teacher's ODE endpoints
    (Heun, the case's reference steps) of `pool` fixed noises, disjoint from the evaluation noise: one-step distillation
    with paired data (Luhman & Luhman, 2021), the teacher runs BOOT avoids. It shows what this student reaches in this
    many steps when it is told the answers for `pool` noises (a small pool is learnt by heart: compare each point's
    `endpoint_on_pairs` with its endpoint); points are evaluated as BOOT's, after each budget. With `run_dir` the pairs
    are kept there for the next run."""
    from boot_nb.config import DistillConfig
    from boot_nb.losses import l2
    from boot_nb.quality import sample_batched
    from boot_nb.sampling import heun_sample, one_step_sample
    from boot_nb.student import make_student
    print(f'\n== {name}, regression on {pool} teacher endpoints: budgets {budgets} x {case["steps"]} steps', flush=True)
    teacher, student = _start(case, seed)
    c = DistillConfig(lr=case.get('lr'), ema_decay=settings.get('ema_decay')).resolve(teacher, student, device='cpu')
    student = make_student(teacher, student, c.t_min, c.t_max, None, None)
    cache = Path(run_dir) / f'{name}-pairs{pool}-seed{seed}.pt' if run_dir else None
    if cache and cache.exists():
        try:
            pairs = torch.load(cache, weights_only=True)                # tensors only: a file runs no code
            eps, ref = pairs['eps'], pairs['ref']
        except Exception as e:
            raise SystemExit(f'quality.py: the cached pairs {str(cache)!r} cannot be read ({e}): delete the file, '
                             'and the next run makes them again.') from None
    else:
        t0 = time.time()
        eps = torch.randn(pool, *teacher.sample_shape, generator=torch.Generator().manual_seed(seed + 100))
        ref = sample_batched(lambda x, cond: heun_sample(teacher, x, case['ref_steps']), eps, batch_size=256)
        print(f'{pool} teacher endpoints in {time.time() - t0:.0f} s', flush=True)
        if cache: cache.parent.mkdir(parents=True, exist_ok=True); torch.save({'eps': eps, 'ref': ref}, cache)
    lr = c.lr if c.lr is not None else 1e-4 if case['student'] is None else 1e-3         # distill's default
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.)
    ema = torch.optim.swa_utils.AveragedModel(student, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(
        c.ema_decay)) if c.ema_decay else None
    g, base = torch.Generator().manual_seed(seed), max(1, round(case['steps'] * steps_scale))
    done, points, t0 = 0, [], time.time()
    for b in sorted(budgets):
        for _ in range(round(base * b) - done):
            i = torch.randint(pool, (case['batch_size'],), generator=g)
            t = torch.full((len(i),), c.t_min)
            loss = l2(student(eps[i], t), ref[i]).mean()            # BOOT's distance d
            opt.zero_grad(); loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), c.grad_clip); opt.step()
            if ema: ema.update_parameters(student)
        done = round(base * b)
        sampler = ema.module if ema else student
        rows = evaluate(teacher, sampler, case, seed)
        by = {r['method']: r for r in rows}
        # the same distance on pairs it trained on: a gap to the evaluation noise's endpoint is over-fitting the pool
        seen = one_step_sample(sampler, eps[:case['n']])
        by[STUDENT]['endpoint_on_pairs'] = (seen - ref[:case['n']]).flatten(1).norm(dim=1).mean().item()
        points.append({'budget': b, 'steps': done, 'samples': done * case['batch_size'],
                       'wall_s': round(time.time() - t0, 1), 'student': by[STUDENT]})
        print(f'{b:g}x ({done} steps): ' +
              ', '.join(f'{k} {v:.4g}' for k, v in by[STUDENT].items() if isinstance(v, float)), flush=True)
    return {'steps': base, 'batch_size': case['batch_size'], 'lr': lr, 'lr_schedule': 'constant',
            'settings': {'regression_pairs': pool, **settings}, 't_max': c.t_max, 'samples': case['n'],
            'teacher': [r for r in rows if r['method'] != STUDENT], 'points': points}


@torch.no_grad()
def fixed_point(name, case, deltas=(0.3, 0.15, 0.1, 0.05), seed=0):
    """The endpoint BOOT's bootstrapping loss would reach if it were minimised exactly: on the times t_max - k delta its
    zero is the teacher's own chain of signal-ODE steps s = max(t - delta, t_min) down from the boundary y(t_max) =
    f(eps, t_max) (Algorithm 1's geometry; chains from other t differ by the same discretisation error), so the chain's
    distance to the teacher's ODE endpoint is the floor that delta and the solver set; what a student is above it,
    training has not reached."""
    from boot_nb.config import DistillConfig
    from boot_nb.sampling import signal_step
    print(f'\n== {name}: fixed points of L^BS', flush=True)
    teacher, _ = _start(case, seed)
    c = DistillConfig(lr=case.get('lr')).resolve(teacher, device='cpu')
    class Chain:                  # the chain as a "student": one_step_sample calls it at t_min
        sample_shape, t_min = teacher.sample_shape, c.t_min
        def __init__(self, delta, solver): self.delta, self.solver = delta, solver
        def __call__(self, eps, t, cond=None):
            n, t = len(eps), c.t_max
            y = teacher(eps, torch.full((n,), t), cond)
            while t > c.t_min:
                s = max(t - self.delta, c.t_min)
                y = signal_step(teacher, y, eps, torch.full((n,), t), torch.full((n,), s), cond, self.solver)
                t = s
            return y
    rows, runs = [], {}
    for delta in deltas:
        for solver in ('heun', 'ddim'):
            by = {r['method']: r for r in evaluate(teacher, Chain(delta, solver), case, seed, runs)}
            rows.append({'delta': delta, 'solver': solver,
                         **{k: v for k, v in by[STUDENT].items() if k not in ('method', 'nfe')}})
            print(f'delta {delta:g}, {solver}: ' + ', '.join(f'{k} {v:.4g}' for k, v in by[STUDENT].items()
                                                             if isinstance(v, float)), flush=True)
    return {'teacher': [r for r in by.values() if r['method'] != STUDENT], 't_min': c.t_min, 't_max': c.t_max,
            'samples': case['n'], 'reference': f'Heun, {case["ref_steps"]} steps', 'rows': rows}


def budget_table(results):
    "Markdown: per case and metric, the student after each budget beside the teacher's DDIM-k."
    lines = []
    for name, r in results['cases'].items():
        metrics = [m for m in ('endpoint', 'fd', 'mmd') if m in r['points'][0]['student']]
        extra = ''.join(f', {k} {v}' for k, v in r.get('settings', {}).items())
        lines += [f'\n**{CASES[name]["title"]}** (batch {r["batch_size"]}, lr {r["lr"] or "default"}, constant{extra}; '
                  f'{r["samples"]} samples)\n',
                  '| | ' + ' | '.join(metrics) + ' |', '|---|' + '---|' * len(metrics)]
        lines += [f'| teacher {t["method"].removeprefix("teacher ")} | ' + ' | '.join(f'{t[m]:.3g}' for m in metrics) +
                  ' |'
                  for t in r['teacher'] if t['method'].startswith('teacher DDIM')]
        lines += [f'| **student, {p["budget"]:g}x ({p["steps"]} steps)** | ' +
                  ' | '.join(f'**{p["student"][m]:.3g}**' for m in metrics) + ' |'
                  for p in r['points']]
    return '\n'.join(lines)


def fixed_point_table(results):
    "Markdown: per case, the endpoint (and FD or MMD) of L^BS's fixed point for each delta and solver."
    lines = []
    for name, r in results['cases'].items():
        metrics = [m for m in ('endpoint', 'fd', 'mmd') if m in r['rows'][0]]
        lines += [f'\n**{CASES[name]["title"]}** (t_min {r["t_min"]:g}, t_max {r["t_max"]:g}; '
                  f'{r["samples"]} samples)\n',
                  '| | ' + ' | '.join(metrics) + ' |', '|---|' + '---|' * len(metrics)]
        lines += [f'| teacher {t["method"].removeprefix("teacher ")} | ' + ' | '.join(f'{t[m]:.3g}' for m in metrics) +
                  ' |' for t in r['teacher'] if t['method'].startswith('teacher DDIM-') and t['nfe'] >= 10]
        lines += [f'| fixed point, delta {p["delta"]:g}, {p["solver"]} target | ' +
                  ' | '.join(f'{p[m]:.3g}' for m in metrics) + ' |' for p in r['rows']]
    return '\n'.join(lines)


def _curve(run):
    return 'regression on teacher endpoints' if 'regression_pairs' in run.get('settings', {}) else 'BOOT, 1 step'


def budget_plot(results, path, beside=()):
    """Quality against training samples, one panel per case and metric; the teacher's DDIM-k as horizontal lines;
    `beside`: other budget results whose curves of the same cases join them."""
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [(name, m) for name, r in results['cases'].items() for m in ('endpoint', 'fd', 'mmd')
              if m in r['points'][0]['student']]
    fig, axs = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for i, (ax, (name, m)) in enumerate(zip(axs[0], panels)):
        runs = [results['cases'][name]] + [b['cases'][name] for b in beside if name in b['cases']]
        for run, style in zip(runs, ('o-k', 's:C3', '^:C0')):
            ax.plot([p['samples'] for p in run['points']], [p['student'][m] for p in run['points']], style,
                    label=_curve(run))
        for t, colour in zip([t for t in runs[0]['teacher'] if t['method'].startswith('teacher DDIM')],
                             plt.cm.viridis([0.1, 0.3, 0.5, 0.7, 0.9])):
            ax.axhline(t[m], ls='--', color=colour, label=t['method'].removeprefix('teacher '))
        ax.set(xscale='log', yscale='log', xlabel='training samples (steps x batch)', ylabel=m)
        ticks = sorted({p['samples'] for run in runs for p in run['points']})
        ax.set_xticks(ticks, [f'{n // 1000}k' for n in ticks])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())      # ticks at the budgets only
        if i == 0 or panels[i - 1][0] != name: ax.set_title(CASES[name]['title'], loc='left', fontsize=9)  # once a case
    axs[0][-1].legend(fontsize=7, loc='upper right')
    fig.tight_layout(); fig.savefig(path, dpi=110)


def _read_budgets(path, parser):
    "The budget results in the JSON file `path` (for --beside), or a clear error."
    try: results = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e: parser.error(f'--beside {path}: cannot read it as JSON ({e})')
    if not (isinstance(results, dict) and isinstance(results.get('cases'), dict)
            and all(isinstance(r, dict) and 'points' in r for r in results['cases'].values())):
        parser.error(f'--beside {path}: not the results of a --budgets run (no cases with points)')
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--cases', nargs='+', default=list(CASES), choices=list(CASES))
    p.add_argument('--out',
                   help='the JSON file (default: benchmarks/results/quality.json, or budget.json with --budgets)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--eval-seed', type=int, help='the evaluation noise and data of this seed (default: --seed): '
                                                  'other training seeds on the same samples, for their spread')
    p.add_argument('--steps-scale', type=float, default=1., help='multiply every case\'s training steps (quick runs)')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (default: %(default)s)')
    p.add_argument('--set', nargs='+', default=[], metavar='NAME=VALUE',
                   help='distill settings for every case, e.g. delta=0.3 solver=ddim batch_size=64 (an ablation; '
                        'values read as Python literals)')
    p.add_argument('--budgets', type=float, nargs='+',
                   help='multiples of each case\'s steps: one constant-lr run evaluated after each')
    p.add_argument('--fixed-point', action='store_true',
                   help="instead of training: the endpoint of the bootstrapping loss's exact minimiser for several "
                        'delta (default --out: benchmarks/results/fixed-point.json)')
    p.add_argument('--regression', type=int, metavar='PAIRS',
                   help='with --budgets: train the same student by regression on PAIRS teacher endpoints instead of '
                        'BOOT (the paired-data reference)')
    p.add_argument('--beside', nargs='+', default=[], metavar='JSON',
                   help="with --budgets: other budget results whose curves join this run's in the figure")
    p.add_argument('--replot', action='store_true',
                   help="with --budgets: train nothing, draw --out's figure and table again (with --beside)")
    p.add_argument('--run-dir', help='with --budgets: keep each case\'s run in RUN_DIR/<case>, so that the command '
                                     'started again continues it (long budgets over several sittings)')
    args = p.parse_args(argv)
    if args.budgets and args.eval_seed is not None: p.error('--eval-seed is for single runs, not --budgets')
    if args.replot and not Path(args.out or 'benchmarks/results/budget.json').is_file():
        p.error('--replot redraws the results in --out, and there are none yet: run the budgets first')
    if (args.replot or args.beside or args.regression) and not args.budgets:
        p.error('--replot, --beside and --regression go with --budgets')
    import ast
    settings = {k: ast.literal_eval(v) if v[:1] in '0123456789.-[(' or v in ('True', 'False', 'None') else v
                for k, v in (a.split('=', 1) for a in args.set)}
    if args.regression and set(settings) - {'ema_decay'}:
        p.error(f'--regression takes only --set ema_decay=..., not {sorted(set(settings) - {"ema_decay"})}: the '
                "regression has no BOOT settings, and its batch and lr are the case's")
    beside = [_read_budgets(f, p) for f in args.beside]
    torch.set_num_threads(args.threads)
    kind = 'fixed-point' if args.fixed_point else 'budget' if args.budgets else 'quality'
    out = Path(args.out or f'benchmarks/results/{kind}.json')
    # Cases run before (e.g. by an earlier `--cases ...`) stay in the file; the ones run now replace theirs.
    results = json.loads(out.read_text()) if out.exists() else {'cases': {}}
    machine = f'{platform.machine()} CPU, torch {torch.__version__}, {args.threads} thread(s)'
    start = time.time()
    for name in [] if args.replot else args.cases:
        run = fixed_point(name, CASES[name], seed=args.seed) if args.fixed_point else \
            (run_regression if args.regression else run_budgets)(
            name, CASES[name], args.budgets, args.seed, args.steps_scale, settings, args.run_dir,
            **({'pool': args.regression} if args.regression else {})) if args.budgets else \
            run_case(name, CASES[name], args.seed, args.steps_scale, settings, args.eval_seed)
        results['cases'][name] = {'machine': machine, 'seed': args.seed,
                                  'eval_seed': args.seed if args.eval_seed is None else args.eval_seed, **run}
    results['cases'] = {k: results['cases'][k] for k in CASES if k in results['cases']}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    if args.fixed_point:
        out.with_suffix('.md').write_text(fixed_point_table(results) + '\n')
        print(f'\nwrote {out} and {out.with_suffix(".md")}\n{fixed_point_table(results)}')
        return results
    if args.budgets:
        budget_plot(results, out.with_suffix('.png'), beside)
        out.with_suffix('.md').write_text(budget_table(results) + '\n')
        print(f'\nwrote {out}, {out.with_suffix(".md")} and {out.with_suffix(".png")} ({time.time() - start:.0f} '
              f's)\n{budget_table(results)}')
        return results
    print(
        f'\nwrote {out} ({time.time() - start:.0f} s)\n\nREADME table (every case in {out}):\n{readme_table(results)}')
    return results


if __name__ == '__main__':
    main()
