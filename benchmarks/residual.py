"""Where along the path a student is still wrong: the per-t residuals that `distill` logs, over training.

Every `diagnose_every` steps a run's log.jsonl holds `residual_by_t` (06_losses) on 16 fixed noises: the bootstrapping
loss L^BS at the centres of 8 bins of [t_min, t_max] (`t_bins`, `bs_by_t`) and the boundary loss L^BC (`bc_fixed`).
This script reads the logs of runs and writes, for each, L^BS against t with one curve per diagnosed step (a PNG), the
first, middle and last profiles as a markdown table, and all of it as JSON. The results on the benchmarks page came from

    boot-nb distill --teacher digits --steps 1500 --batch-size 32 --lr 1e-3 --out runs/digits
    boot-nb distill --teacher digits-rgb --steps 400 --batch-size 16 --lr 1e-3 --t-max 0.8 --delta 0.3 \\
        --eval-samples 0 --out runs/digits-rgb
    python benchmarks/residual.py digits=runs/digits digits-rgb=runs/digits-rgb --out benchmarks/results/residual
"""
import argparse, json
from pathlib import Path


def read_run(folder):
    "The diagnosed log lines of the run in `folder`, and its command.json (what `boot-nb distill` was given) if any."
    folder = Path(folder)
    log = folder / 'log.jsonl'
    if not log.is_file():
        raise SystemExit(f'residual.py: {str(folder)!r} holds no log.jsonl: give the out_dir of a run.')
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    rows = []
    for i, line in enumerate(lines):
        try: rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1: break          # a run killed while writing: its last line is cut short
            raise SystemExit(f'residual.py: line {i + 1} of {str(log)!r} is not JSON: the log is damaged.') from None
    rows = [{k: r[k] for k in ('step', 't_bins', 'bs_by_t', 'bc_fixed')} for r in rows if 'bs_by_t' in r]
    if not rows:
        raise SystemExit(f'residual.py: {str(log)!r} has no diagnostics: '
                         'run distill with diagnose_every > 0 (the default is 100).')
    command = folder / 'command.json'
    return {'command': json.loads(command.read_text()) if command.is_file() else None, 'rows': rows}


def shown(rows):
    "The first, middle and last diagnosed steps."
    return [rows[i] for i in sorted({0, len(rows) // 2, len(rows) - 1})]


def table(runs):
    "Markdown: per run, L^BS in each t-bin at the first, middle and last diagnosed step, and last / first."
    lines = []
    for name, run in runs.items():
        rows = run['rows']
        lines += [f'\n**{name}**\n', '| step | ' + ' | '.join(f't = {t:.2f}' for t in rows[0]['t_bins']) + ' | L^BC |',
                  '|---|' + '---|' * (len(rows[0]['t_bins']) + 1)]
        lines += [f'| {r["step"]} | ' + ' | '.join(f'{v:.2g}' for v in r['bs_by_t']) + f' | {r["bc_fixed"]:.2g} |'
                  for r in shown(rows)]
        first, last = rows[0], rows[-1]
        lines.append('| last / first | ' + ' | '.join(f'{b / a:.2f}' for a, b in zip(first['bs_by_t'], last['bs_by_t']))
                     + f' | {last["bc_fixed"] / first["bc_fixed"]:.2f} |')
    return '\n'.join(lines)


def figure(runs):
    "One panel per run: L^BS against t, a curve per diagnosed step (light: early, dark: late)."
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.4), squeeze=False)
    for ax, (name, run) in zip(axs[0], runs.items()):
        rows = run['rows']
        for i, r in enumerate(rows):
            ax.plot(r['t_bins'], r['bs_by_t'], 'o-', ms=3, color=plt.cm.viridis(1 - i / max(1, len(rows) - 1)),
                    label=f'step {r["step"]}' if r in shown(rows) else None)
        ax.set(yscale='log', xlabel='t (bin centre)', ylabel=r'$\mathcal{L}^{BS}$ on 16 fixed noises', title=name)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def main(argv=None):
    p = argparse.ArgumentParser(description='Per-t residuals of distill runs (their log.jsonl), over training.')
    p.add_argument('runs', nargs='+', help='NAME=FOLDER: a run\'s out_dir and the name to show it by')
    p.add_argument('--out', default='benchmarks/results/residual', help='output prefix: .json, .md, .png are added')
    args = p.parse_args(argv)
    bad = [r for r in args.runs if '=' not in r]
    if bad: raise SystemExit(f'residual.py: give each run as NAME=FOLDER, got {bad[0]!r}.')
    runs = {name: read_run(folder) for name, folder in (r.split('=', 1) for r in args.runs)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix('.json').write_text(json.dumps(runs, indent=1))
    md = table(runs)
    out.with_suffix('.md').write_text(md.strip() + '\n')
    figure(runs).savefig(out.with_suffix('.png'), dpi=110)
    print(md)
    print(f'\nwrote {out}.json, {out}.md and {out}.png')


if __name__ == '__main__':
    main()
