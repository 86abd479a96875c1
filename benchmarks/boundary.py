"""Boundary benchmark: what a teacher copy's t_max costs and buys (`boot_nb.student`, eq. (S)).

For the shipped digits teacher (v-prediction, cosine schedule) and the same network as an epsilon-prediction teacher on
the linear DDPM and the IF cosine schedules (`quality.shipped_digits_eps`), and for t_max =
`copy_t_max(schedule, type, G)` over a range of gain bounds G, it prints and writes
(`benchmarks/results/boundary.json`):

- `alpha`: alpha(t_max); `gain`: |c_out(t_max)|, which a copy that is exact at t_max must have;
- `offset`: the mean L2 distance between the teacher's ODE solved from the student's boundary point
  x = alpha f(eps, t_max) + sigma eps at t_max, and from eps at t = 1 (both Heun, 50 steps): the endpoint error of a
  perfect student with that t_max; `colour`: the same for the images' per-channel means alone (their global colour);
  the teacher's DDIM-4 from eps at t = 1 is measured the same way, for scale;

and, for the copy at distill's default t_max before training, the rms of its signal y(eps, t) at a few t for three ways
of converting its output: the teacher's own coefficients (u = t), those of t_max at every t, and eq. (S), and the
*colour gain* at t_min: the least-squares slope of y's per-channel means on the noise's (the ODE's own is printed
beside it). A UNet whose GroupNorm groups hold one or two channels cannot make that gain: the copy's is the
conversion's c_skip(u(t_min)), whatever its weights.

    python benchmarks/boundary.py --threads 2        # about 10 minutes on 2 CPU cores
"""
import argparse, json, platform
from pathlib import Path

import torch

from boot_nb.config import default_t_max
from boot_nb.sampling import ddim_sample, heun_sample
from boot_nb.student import colour_gain, convert_range, copy_gain, copy_t_max, make_student
from boot_nb.teachers import load_teacher
from quality import shipped_digits, shipped_digits_eps

TEACHERS = {'v, cosine (shipped)': shipped_digits, 'epsilon, linear': shipped_digits_eps,
            'epsilon, squaredcos_cap_v2': lambda: shipped_digits_eps('squaredcos_cap_v2'),
            'epsilon, linear, colour (digits-rgb)': lambda: load_teacher('digits-rgb')}
GAINS = (2, 5, 10, 20, 50, float('inf'))


def offsets(teacher, n=100, steps=50, seed=1):
    sch, ptype = teacher.schedule, teacher.prediction_type
    eps = torch.randn(n, *teacher.sample_shape, generator=torch.Generator().manual_seed(seed))
    ref = heun_sample(teacher, eps, steps)
    rows = []
    for g in GAINS:
        t_max = copy_t_max(sch, ptype, g)
        if rows and rows[-1]['t_max'] == t_max: continue
        t = torch.full((n,), t_max)
        a, s = (f(t.double()).float().reshape(-1, 1, 1, 1) for f in (sch.alpha, sch.sigma))
        with torch.no_grad(): x = a * teacher.predict(teacher.net, eps, t, postprocess=False) + s * eps
        out = heun_sample(teacher, x, steps, t_max=t_max) if t_max < 1 else ref
        rows.append({'max_gain': g, 't_max': t_max, 'alpha': a[0].item(), 'gain': copy_gain(sch, ptype, t_max).item(),
                     'offset': (out - ref).flatten(1).norm(dim=1).mean().item(),
                     'colour': (colour(out) - colour(ref)).flatten(1).norm(dim=1).mean().item()})
    with torch.no_grad(): ddim4 = ddim_sample(teacher, eps, 4)
    ddim4 = {'offset': (ddim4 - ref).flatten(1).norm(dim=1).mean().item(),
             'colour': (colour(ddim4) - colour(ref)).flatten(1).norm(dim=1).mean().item()}
    return rows, colour_gain(eps, ref), ddim4


def colour(x):
    "Each image's per-channel mean, broadcast back to its pixels: the part of the image that is global colour."
    return x.mean((-2, -1), keepdim=True).expand_as(x)


def start_rms(teacher, n=64, seed=0, times=(0.002, 0.05, 0.2, 0.4)):
    """rms of the untrained copy's signal at `times` and t_max, for each conversion of its output (u = t, u = t_max, eq.
    (S))."""
    eps = torch.randn(n, *teacher.sample_shape, generator=torch.Generator().manual_seed(seed))
    t_max = default_t_max(teacher)
    student = make_student(teacher, None, min(times), t_max, None, None)
    ways = {'u = t': None, 'u = t_max': [t_max, t_max],
            '(S)': list(convert_range(teacher.schedule, teacher.prediction_type, t_max))}
    rows = []
    for way, r in ways.items():
        kw = {'postprocess': False, **({} if r is None else {'convert_range': r})}
        with torch.no_grad():
            ys = [teacher.predict(student.net, eps, torch.full((n,), t), **kw) for t in (*times, t_max)]
        rows.append({'conversion': way, 't_max': t_max, 'colour_gain': colour_gain(eps, ys[0]),
                     'rms': {f'{t:g}': y.pow(2).mean().sqrt().item() for t, y in zip((*times, t_max), ys)}})
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='benchmarks/results/boundary.json')
    p.add_argument('--threads', type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {'machine': f'{platform.machine()} CPU, torch {torch.__version__}', 'teachers': {}}
    print('| teacher | G | t_max | alpha(t_max) | gain at t_max | offset | colour |\n|---|' + '---:|' * 6)
    ode_gain = {}
    for name, make in TEACHERS.items():
        rows, ode_gain[name], ddim4 = offsets(make())
        results['teachers'][name], results.setdefault('ddim4', {})[name] = rows, ddim4
        for r in rows:
            print(f'| {name} | {r["max_gain"]:g} | {r["t_max"]:.4f} | {r["alpha"]:.3g} | {r["gain"]:.3g} | '
                  f'{r["offset"]:.3f} | {r["colour"]:.3f} |', flush=True)
        print(f'| {name} | the teacher\'s DDIM-4, for scale | | | | {ddim4["offset"]:.3f} | {ddim4["colour"]:.3f} |')
    print('\n| teacher | conversion | ' +
          ' | '.join(f'rms of y at t = {t}' for t in ('0.002', '0.05', '0.2', '0.4', 't_max')) +
          ' | colour gain at t_min (the ODE\'s) |\n|---|---|' + '---:|' * 6)
    for name, make in TEACHERS.items():
        rows = results['teachers'][name + ' (start)'] = start_rms(make())
        for r in rows:
            r['ode_colour_gain'] = ode_gain[name]
            print(f'| {name} | {r["conversion"]} | ' + ' | '.join(f'{v:.3g}' for v in r['rms'].values()) +
                  f' | {r["colour_gain"]:.3g} ({ode_gain[name]:.3g}) |', flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
