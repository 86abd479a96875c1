"""Quality benchmark: one-step BOOT students against the teacher's DDIM with 1, 2, 4, 10 and 20 steps.

Distils exact teachers (a 2-D and an 8-D Gaussian mixture, the optimal denoiser of 256 sklearn digits) into a small MLP
student, and the shipped digits UNet teacher into a copy of itself, with `distill`'s default BOOT settings (delta, solver,
beta, learning rate; only the number of steps, the batch size and the student's size are chosen here, to fit a 2-core CPU).
For each case it measures, on fixed noise:

- `endpoint`: the mean L2 distance of each sample to the teacher's ODE endpoint from the same noise (Heun, many steps);
- a distribution distance to the data: MMD (`boot_nb.metrics.mmd`) for the exact teachers, and the Frechet distance of the
  digit classifier's features (`boot_nb.metrics.frechet_distance` / `digit_features`) for the digit teachers.

It prints a table per case and writes `benchmarks/results/quality.json` (or `--out`). A case's target names the DDIM
baseline the one-step student must beat on both numbers (the shipped UNet: on FD). Run from the repository root:

    python benchmarks/quality.py                      # all cases, about 20 minutes on 2 CPU cores
    python benchmarks/quality.py --cases gmm2d gmm8d  # some of them
"""
import argparse, json, platform, tempfile, time
from pathlib import Path

import torch

from boot_nb.cli import EXACT_TEACHERS
from boot_nb.metrics import digit_features, frechet_distance, mmd
from boot_nb.sampling import ddim_sample, heun_sample, one_step_sample
from boot_nb.train import MLPStudent, distill

DDIM_STEPS = (1, 2, 4, 10, 20)


def shipped_digits():
    from boot_nb.teachers import load_teacher
    return load_teacher('digits')


# name: teacher, student (None: a copy of the teacher), training steps and batch, samples and Heun steps for the
# reference, distribution metric, and the DDIM baseline to beat.
CASES = {
    'gmm2d': dict(teacher=EXACT_TEACHERS['gmm2d'], student=dict(hidden=256, depth=4), steps=4000, batch_size=256,
                  n=2000, ref_steps=200, metric='mmd', target='DDIM-4'),
    'gmm8d': dict(teacher=EXACT_TEACHERS['gmm8d'], student=dict(hidden=256, depth=4), steps=4000, batch_size=256,
                  n=2000, ref_steps=200, metric='mmd', target='DDIM-10'),
    'digits256': dict(teacher=EXACT_TEACHERS['digits-exact'], student=dict(hidden=256, depth=4), steps=3000, batch_size=256,
                      n=1000, ref_steps=200, metric='fd', target='DDIM-2'),
    'digits-unet': dict(teacher=shipped_digits, student=None, steps=600, batch_size=32,
                        n=500, ref_steps=50, metric='fd', target='DDIM-4', target_on=('fd',)),
}


def distribution_distance(metric, x, data, bandwidth):
    "MMD (fixed kernel bandwidth, from the data) and, for digits, the Frechet distance of the classifier's features."
    d = {'mmd': mmd(x.flatten(1).double(), data.flatten(1).double(), bandwidth)}
    if metric == 'fd': d['fd'] = frechet_distance(digit_features(x), digit_features(data))
    return d


def median_distance(data):
    "The median distance between two data points: one kernel bandwidth for every method of a case."
    d = torch.cdist(data.flatten(1).double(), data.flatten(1).double())
    return d[~torch.eye(len(d), dtype=torch.bool)].median().item()


def run_case(name, case, seed=0, steps_scale=1.):
    print(f'\n== {name}', flush=True)
    teacher = case['teacher']()
    steps = max(1, round(case['steps'] * steps_scale))
    torch.manual_seed(seed)
    student = None if case['student'] is None else MLPStudent(teacher.sample_shape, **case['student'])
    t0, c0 = time.time(), time.process_time()
    with tempfile.TemporaryDirectory() as out:
        student = distill(teacher, student, steps=steps, batch_size=case['batch_size'], seed=seed, out_dir=out,
                          checkpoint_every=steps, sample_every=0, progress=False)
    train = {'wall_s': round(time.time() - t0, 1), 'cpu_s': round(time.process_time() - c0, 1)}

    g = torch.Generator().manual_seed(seed + 1)
    n = case['n']
    eps = torch.randn(n, *teacher.sample_shape, generator=g)
    data = teacher.sample(n, generator=g) if hasattr(teacher, 'sample') else _digit_data(n, teacher)
    with torch.no_grad():
        ref = heun_sample(teacher, eps, case['ref_steps'])
        samples = {f'DDIM-{k}': (k, ddim_sample(teacher, eps, k)) for k in DDIM_STEPS}
        samples['BOOT student'] = (1, one_step_sample(student, eps))
        samples[f'teacher ODE (Heun-{case["ref_steps"]})'] = (2 * case['ref_steps'] - 1, ref)
    rows, bandwidth = [], median_distance(data)
    for method, (nfe, x) in samples.items():
        x = x.float()
        rows.append({'method': method, 'nfe': nfe, 'endpoint': (x - ref.float()).flatten(1).norm(dim=1).mean().item(),
                     **distribution_distance(case['metric'], x, data, bandwidth)})
    cols = ['endpoint'] + (['fd', 'mmd'] if case['metric'] == 'fd' else ['mmd'])
    print(f'{"method":24} {"NFE":>4} ' + ' '.join(f'{c:>10}' for c in cols))
    for r in rows: print(f'{r["method"]:24} {r["nfe"]:4d} ' + ' '.join(f'{r[c]:10.4g}' for c in cols))
    by = {r['method']: r for r in rows}
    on = case.get('target_on', ('endpoint', case['metric']))
    margins = {c: by[case['target']][c] - by['BOOT student'][c] for c in on}
    met = all(m > 0 for m in margins.values())
    print(f'target: beat {case["target"]} on {", ".join(on)}: {"met" if met else "MISSED"} '
          f'(baseline minus student: {", ".join(f"{c} {m:+.4g}" for c, m in margins.items())}); '
          f'training {steps} steps took {train["wall_s"]} s wall, {train["cpu_s"]} s CPU', flush=True)
    return {'steps': steps, 'batch_size': case['batch_size'], 'student': case['student'] or 'copy of the teacher',
            'samples': n, 'reference': f'Heun, {case["ref_steps"]} steps', 'training': train, 'rows': rows,
            'target': case['target'], 'target_on': list(on), 'margins': margins, 'met': met}


def _digit_data(n, teacher):
    "Real digits at the teacher's resolution, for teachers without a `sample` (the shipped UNet)."
    from boot_nb.exact import digits
    x, _ = digits(teacher.sample_shape[-1])
    return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:n]]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--cases', nargs='+', default=list(CASES), choices=list(CASES))
    p.add_argument('--out', default='benchmarks/results/quality.json')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--steps-scale', type=float, default=1., help='multiply every case\'s training steps (quick runs)')
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads (default: %(default)s)')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    # Cases run before (e.g. by an earlier `--cases ...`) stay in the file; the ones run now replace theirs.
    results = json.loads(out.read_text()) if out.exists() else {'cases': {}}
    machine = f'{platform.machine()} CPU, torch {torch.__version__}, {args.threads} thread(s)'
    start = time.time()
    for name in args.cases:
        results['cases'][name] = {'machine': machine, 'seed': args.seed, **run_case(name, CASES[name], args.seed, args.steps_scale)}
    results['cases'] = {k: results['cases'][k] for k in CASES if k in results['cases']}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f'\nwrote {out} ({time.time() - start:.0f} s)')
    return results


if __name__ == '__main__':
    main()
