#!/usr/bin/env python
"""Build boot_nb's documentation pages, and README.md, offline: no Quarto, no CDN.

    python scripts/build_docs.py [--out _site] [--only index 00_schedules ...]
    python scripts/build_docs.py --readme [--check]

Pages: every notebook in `nbs/` (nbdev's `nbs_path`, recursively, skipping `_*` / `.*` as nbdev
does) and in `tutorials/` goes through nbdev's own docs processors (`FilterDefaults`, exactly what
`nbdev_docs` / `nbdev_proc_nbs` run before Quarto: frontmatter, `#| hide`, `#| export`, show_doc,
doc links, ...), then through nbconvert's HTML exporter. Notebooks are not executed: the pages show
the outputs stored in the notebooks (nbdev itself only runs exported/import/show_doc cells to
render `show_doc`). The Quarto cell options that nbdev emits (`echo`, `output`, `include`,
`code-fold`) and the Quarto markdown it produces (link attributes, fenced divs, callouts) are
translated to plain HTML.

Math is typeset in the browser by a local copy of MathJax 3 (SVG output, all TeX extensions in
one file), installed from the npm registry into `_docs_cache/` on first use and copied to
`<out>/_static/mathjax/`. Set BOOT_NB_MATHJAX to a MathJax 3 `es5` folder (or to its
`tex-svg-full.js`) to use an existing copy instead of npm.

`--readme` renders `nbs/index.ipynb` (settings.ini `readme_nb`) to GitHub markdown in README.md,
the offline equivalent of `nbdev_readme`; `--check` only reports whether README.md is up to date.
"""
from __future__ import annotations

import argparse, html, json, os, re, shutil, subprocess, sys, tempfile, time, traceback, urllib.parse
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / '_docs_cache'
MATHJAX_VERSION = '3.2.2'
MATHJAX_FILE = 'tex-svg-full.js'
SITE_MARKER = '.boot_nb_site'
ASSET_EXTS = {'.png', '.jpg', '.jpeg', '.gif', '.svg', '.webp', '.pdf', '.mp4', '.webm'}


def die(msg):
    print(f'build_docs: error: {msg}', file=sys.stderr)
    sys.exit(1)


# ----------------------------------------------------------------------------- nbdev processing

def process_notebooks(pairs, workers):
    "Run nbdev's docs processors on `(src, dst)` notebook pairs, as `nbdev.serve.proc_nbs` does."
    import nbdev.serve_drv
    from nbdev.processors import FilterDefaults
    for _, d in pairs: Path(d).parent.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(workers, len(pairs)))
    failed = []
    if len(pairs) == 1:  # no worker to start for a single notebook (e.g. README.md)
        (s, d), = pairs
        try: nbdev.serve_drv.main((Path(s), Path(d), FilterDefaults))
        except Exception as e:
            print(f'\n--- nbdev processing failed for {s}:\n' + ''.join(traceback.format_exception(e)), file=sys.stderr)
            die(f'notebook failed nbdev processing: {s}')
        return
    # spawned workers (as proc_nbs does): show_doc cells import the library in a fresh interpreter
    with ProcessPoolExecutor(workers, mp_context=mp.get_context('spawn')) as ex:
        futs = {ex.submit(nbdev.serve_drv.main, (Path(s), Path(d), FilterDefaults)): s for s, d in pairs}
        for f, s in futs.items():
            try: f.result()
            except Exception as e:
                tb = ''.join(traceback.format_exception(e))
                print(f'\n--- nbdev processing failed for {s}:\n{tb}', file=sys.stderr)
                failed.append(str(s))
    if failed: die(f'{len(failed)} notebook(s) failed nbdev processing: ' + ', '.join(failed))


def get_cfg():
    from nbdev.config import get_config
    return get_config(path=REPO)


def find_notebooks(path: Path):
    "Notebooks nbdev would document in `path`, recursively, skipping `_*`/`.*` files and folders."
    from nbdev.doclinks import nbglob
    if not path.exists(): return []
    return sorted(nbglob(path, func=Path, file_glob='', file_re=r'\.ipynb$',
                         skip_folder_re=r'^[_.]', skip_file_re=r'^[_.]'))


# ----------------------------------------------------------------------------- MathJax

def _mathjax_from_env():
    p = os.environ.get('BOOT_NB_MATHJAX')
    if not p: return None
    p = Path(p)
    f = p if p.is_file() else next((q for q in (p/MATHJAX_FILE, p/'es5'/MATHJAX_FILE) if q.is_file()), None)
    if f is None: die(f'BOOT_NB_MATHJAX={p} holds no {MATHJAX_FILE} (want a MathJax 3 es5 folder)')
    return f.parent


def ensure_mathjax() -> Path:
    "Folder holding MathJax 3's es5 components; installs mathjax@MATHJAX_VERSION from npm if needed."
    env = _mathjax_from_env()
    if env: return env
    es5 = CACHE / f'mathjax-{MATHJAX_VERSION}' / 'es5'
    if (es5/MATHJAX_FILE).is_file(): return es5
    npm = shutil.which('npm')
    if not npm:
        die('MathJax is needed to typeset math offline and is installed with npm, which was not found.\n'
            '  Install Node.js + npm (Debian: `apt-get install -y npm`) and rerun, or point BOOT_NB_MATHJAX\n'
            f'  at an unpacked MathJax 3 es5 folder (e.g. from `npm pack mathjax@{MATHJAX_VERSION}`).')
    CACHE.mkdir(exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix='npm-', dir=CACHE))
    try:
        (tmp/'package.json').write_text('{"name": "boot-nb-docs-cache", "private": true}\n')
        print(f'build_docs: npm install mathjax@{MATHJAX_VERSION} into {CACHE}', flush=True)
        r = subprocess.run([npm, 'install', '--no-audit', '--no-fund', '--no-save', '--loglevel=error',
                            f'mathjax@{MATHJAX_VERSION}'], cwd=tmp, capture_output=True, text=True)
        got = tmp/'node_modules'/'mathjax'
        if r.returncode or not (got/'es5'/MATHJAX_FILE).is_file():
            die(f'`npm install mathjax@{MATHJAX_VERSION}` failed (exit {r.returncode}):\n{r.stdout}{r.stderr}\n'
                '  The docs need MathJax from the npm registry; check network/npm config, or set BOOT_NB_MATHJAX.')
        try: got.rename(es5.parent)  # atomic; a concurrent build may have won the race, which is fine
        except OSError:
            if not (es5/MATHJAX_FILE).is_file(): raise
    finally: shutil.rmtree(tmp, ignore_errors=True)
    return es5


def copy_mathjax(es5: Path, static: Path):
    dst = static/'mathjax'
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(es5/MATHJAX_FILE, dst/MATHJAX_FILE)
    # components the menu may load on demand (accessibility, menu); the speech engine (sre) is left out
    for sub in ('a11y', 'ui'):
        if (es5/sub).is_dir(): shutil.copytree(es5/sub, dst/sub, dirs_exist_ok=True)
    lic = es5.parent/'LICENSE'
    if lic.is_file(): shutil.copy2(lic, dst/'LICENSE')


MATHJAX_HEAD = r"""<script>
window.MathJax = {
  tex: {
    inlineMath: [['$', '$'], ['\\(', '\\)']],
    displayMath: [['$$', '$$'], ['\\[', '\\]']],
    processEscapes: true, processEnvironments: true, tags: 'ams',
    packages: {'[-]': ['noundefined']}   // an undefined macro is an error, not red text
  },
  svg: {fontCache: 'global'},
  options: {ignoreHtmlClass: 'tex2jax_ignore', processHtmlClass: 'tex2jax_process'},
  startup: {
    pageReady: function () {
      return MathJax.startup.defaultPageReady().then(function () {
        var d = document.documentElement;
        d.setAttribute('data-mathjax-count', document.querySelectorAll('mjx-container').length);
        d.setAttribute('data-mathjax-errors', document.querySelectorAll('[data-mjx-error]').length);
        d.setAttribute('data-mathjax', 'ready');
      });
    }
  }
};
</script>
<script id="MathJax-script" defer src="{{ resources.bn.root }}_static/mathjax/""" + MATHJAX_FILE + '"></script>'


# ----------------------------------------------------------------------------- Quarto -> plain

_re_dir = re.compile(r'^\s*#\|\s?(.*)$')
_re_opt = re.compile(r'^([\w-]+)\s*:\s*(.*?)\s*$')
_re_fence = re.compile(r'^\s{0,3}(`{3,}|~{3,})')
_re_div = re.compile(r'^\s{0,3}(:{3,})\s*(?:\{(.*)\}|([\w-]+))?\s*$')
_re_attr_link = re.compile(r'(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^()\s]+)(?:\s+"([^"]*)")?\)\{([^{}]*)\}')
_re_head_attr = re.compile(r'^(#{1,6}\s.*?)\s*\{[#.][^{}]*\}\s*$')
_re_kv = re.compile(r'([\w-]+)=("[^"]*"|\'[^\']*\'|\S+)')
CALLOUTS = {'note': 'NOTE', 'tip': 'TIP', 'important': 'IMPORTANT', 'warning': 'WARNING', 'caution': 'CAUTION'}


def split_options(src):
    "Leading `#|` lines of a code cell -> (Quarto/nbdev options dict, remaining source)."
    lines, opts = src.splitlines(), {}
    i = 0
    while i < len(lines) and _re_dir.match(lines[i]):
        m = _re_opt.match(_re_dir.match(lines[i]).group(1).strip())
        if m: opts[m.group(1)] = m.group(2).strip('\'"')
        i += 1
    return opts, '\n'.join(lines[i:]).strip('\n')


def _attrs(s):
    "Pandoc attribute string -> (id, classes, key/values)."
    kv = {k: v.strip('"\'') for k, v in _re_kv.findall(s)}
    rest = _re_kv.sub('', s).split()
    return (next((w[1:] for w in rest if w.startswith('#')), None), [w[1:] for w in rest if w.startswith('.')], kv)


def _attr_link(m, html_out):
    bang, text, url, title, attrs = m.groups()
    if not html_out or (not bang and re.search(r'[`*_\[$<]', text)):
        return f'{bang}[{text}]({url}' + (f' "{title}"' if title else '') + ')'
    _id, cls, kv = _attrs(attrs)
    a = ''.join(f' {k}="{html.escape(v)}"' for k, v in kv.items() if re.match(r'^[\w-]+$', k))
    if cls: a += f' class="{" ".join(cls)}"'
    if _id: a += f' id="{_id}"'
    if title: a += f' title="{html.escape(title)}"'
    if bang: return f'<img src="{html.escape(url)}" alt="{html.escape(text)}"{a}>'
    return f'<a href="{html.escape(url)}"{a}>{html.escape(text)}</a>'


def quarto_md(src, html_out=True):
    "Translate the Quarto-only markdown nbdev produces into CommonMark (+HTML) or GitHub markdown."
    out, stack, fence = [], [], None
    prefix = lambda: ''.join(p for p in stack)
    for line in src.splitlines():
        if fence:
            if line.strip().startswith(fence): fence = None
            out.append(prefix() + line); continue
        m = _re_fence.match(line)
        if m:
            fence = m.group(1)
            out.append(prefix() + line); continue
        m = _re_div.match(line)
        if m:
            if m.group(2) is None and m.group(3) is None:  # closing fence
                if stack: p = stack.pop()
                else: continue
                if html_out: out += ['', '</div>', '']
                elif p == '' and out and out[-1] != '': out.append('')
                continue
            _id, cls, kv = _attrs(m.group(2) or '.' + m.group(3))
            callout = next((c.split('-', 1)[1] for c in cls if c.startswith('callout-')), None)
            if html_out:
                c = ' '.join(cls + (['callout'] if callout else []))
                out += ['', f'<div class="{c}"' + (f' id="{_id}"' if _id else '') + '>']
                if callout:
                    t = kv.get('title', callout.capitalize())
                    out += [f'<div class="callout-title">{html.escape(t)}</div>']
                out.append('')
                stack.append('')
            elif callout:
                p = prefix()
                out.append(f'{p}> [!{CALLOUTS.get(callout, "NOTE")}]')
                if 'title' in kv: out.append(f'{p}> **{kv["title"]}**\n{p}>')
                stack.append('> ')
            else:
                stack.append('')
            continue
        line = _re_attr_link.sub(lambda m: _attr_link(m, html_out), line)
        line = _re_head_attr.sub(r'\1', line)
        out.append((prefix() + line) if line or not stack or stack[-1] == '' else prefix().rstrip())
    if html_out: out += ['</div>'] * len(stack)
    return '\n'.join(out)


def quartoish_to_plain(nb, html_out=True):
    "Apply the Quarto cell options (`echo`, `output`, `include`, `code-fold`) and markdown fixes."
    cells = []
    for cell in nb.cells:
        if cell.cell_type == 'code':
            opts, cell.source = split_options(cell.source)
            low = {k: str(v).lower() for k, v in opts.items()}
            if low.get('include') == 'false': continue
            if low.get('output') == 'false': cell.outputs = []
            if low.get('echo') == 'false' or not cell.source.strip():
                cell.metadata.setdefault('transient', {})['remove_source'] = True
                if not cell.outputs: continue
            if low.get('code-fold') in ('true', 'show'):
                cell.metadata['bn_fold'] = low['code-fold']
                cell.metadata['bn_summary'] = opts.get('code-summary', 'Code')
            for o in cell.outputs:
                md = o.get('data', {}).get('text/markdown')
                if md is not None: o['data']['text/markdown'] = quarto_md(''.join(md), html_out)
        elif cell.cell_type == 'markdown':
            cell.source = quarto_md(cell.source, html_out)
        cells.append(cell)
    nb.cells = cells
    return nb


def pop_frontmatter(nb):
    "Remove the YAML frontmatter raw cell nbdev's FrontmatterProc inserts; return its dict."
    import yaml
    for i, c in enumerate(nb.cells):
        if c.cell_type == 'raw' and c.source.lstrip().startswith('---'):
            m = re.match(r'^\s*---\s*\n(.*?)\n---\s*$', c.source.strip() + '\n', flags=re.S)
            if m:
                del nb.cells[i]
                return yaml.safe_load(m.group(1)) or {}
    return {}


# ----------------------------------------------------------------------------- HTML pages

PAGE_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block notebook_css -%}
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{{ resources.bn.root }}_static/jupyter.css">
<link rel="stylesheet" href="{{ resources.bn.root }}_static/site.css">
{%- endblock notebook_css -%}
{%- block html_head_js_mathjax -%}
""" + MATHJAX_HEAD + r"""
{%- endblock html_head_js_mathjax -%}
{%- block body_header -%}
<body class="jp-Notebook bn-page" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
<nav class="bn-sidebar" aria-label="Pages">
{{ resources.bn.nav }}
</nav>
<main class="bn-main">
<header class="bn-title-block">
<h1 class="title">{{ resources.bn.title_html }}</h1>
{%- if resources.bn.description_html %}
<p class="description">{{ resources.bn.description_html }}</p>
{%- endif %}
{%- if resources.bn.source_url %}
<p class="bn-source"><a href="{{ resources.bn.source_url }}">{{ resources.bn.source_label }}</a></p>
{%- endif %}
</header>
{%- endblock body_header -%}
{% block body_footer %}
<footer class="bn-footer">{{ resources.bn.footer }}</footer>
</main>
</body>
{% endblock body_footer %}
{% block input_group -%}
{%- if cell.metadata.get('bn_fold') -%}
<details class="bn-fold"{{ ' open' if cell.metadata.bn_fold == 'show' else '' }}><summary>{{ cell.metadata.bn_summary | e }}</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{%- endblock input_group %}
"""

SITE_CSS = """
body.bn-page { display: flex; align-items: flex-start; margin: 0; padding: 0;
  background: var(--jp-layout-color0, #fff); }
nav.bn-sidebar { position: sticky; top: 0; flex: 0 0 15rem; width: 15rem; height: 100vh; overflow-y: auto;
  box-sizing: border-box; padding: 1.25rem 1rem; border-right: 1px solid #e3e3e3; background: #f7f8fa;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
nav.bn-sidebar .bn-site-title { display: block; font-size: 1.15rem; font-weight: 600; color: #222;
  text-decoration: none; margin-bottom: .2rem; }
nav.bn-sidebar .bn-site-desc { color: #666; font-size: .8rem; margin: 0 0 1rem; }
nav.bn-sidebar .bn-nav-section { font-size: .72rem; text-transform: uppercase; letter-spacing: .06em; color: #888;
  margin: 1.1rem 0 .35rem; }
nav.bn-sidebar ul { list-style: none; margin: 0; padding: 0; }
nav.bn-sidebar li a { display: block; padding: .25rem .5rem; border-radius: 4px; color: #2a5db0; text-decoration: none; }
nav.bn-sidebar li a:hover { background: #e9eef7; }
nav.bn-sidebar li a[aria-current="page"] { background: #dde6f5; color: #14326b; font-weight: 600; }
nav.bn-sidebar .bn-repo { display: block; margin-top: 1.25rem; color: #555; font-size: .85rem; }
main.bn-main { flex: 1 1 auto; min-width: 0; max-width: 62rem; box-sizing: border-box; padding: 1.5rem 2.5rem 3rem; }
.bn-title-block { margin: 0 0 1.25rem; padding-bottom: .75rem; border-bottom: 1px solid #eee;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.bn-title-block h1.title { font-size: 2.1rem; margin: .2rem 0 .4rem; }
.bn-title-block .description { font-size: 1.15rem; font-style: italic; color: #555; margin: 0; }
.bn-title-block .bn-source { font-size: .8rem; margin: .5rem 0 0; }
.bn-footer { margin-top: 3rem; padding-top: .75rem; border-top: 1px solid #eee; color: #888; font-size: .8rem;
  font-family: system-ui, sans-serif; }
.jp-Notebook-cell { padding: 2px 0; }
.jp-RenderedHTMLCommon { padding-right: 0; }
.jp-RenderedMarkdown hr { margin: 1.5rem 0 .5rem; }
details.bn-fold > summary { cursor: pointer; color: #666; font: .85rem system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; margin: .25rem 0; }
.callout { border-left: 4px solid #4a7fd4; background: #f3f7fd; padding: .25rem 1rem; margin: 1rem 0; border-radius: 3px; }
.callout-warning, .callout-caution { border-left-color: #e0a800; background: #fffaf0; }
.callout-important { border-left-color: #d9534f; background: #fdf3f3; }
.callout-tip { border-left-color: #3c9a5f; background: #f2faf5; }
.callout-title { font-weight: 600; margin-top: .5rem; }
a.anchor-link { display: none; }
.jp-RenderedMarkdown pre { background: var(--jp-cell-editor-background, #f7f7f7); padding: .5rem .75rem; border-radius: 3px; }
.jp-RenderedMarkdown table { margin-left: 0; }
mjx-container[display="true"] { overflow-x: auto; overflow-y: hidden; }
@media (max-width: 800px) {
  body.bn-page { display: block; }
  nav.bn-sidebar { position: static; width: auto; height: auto; border-right: 0; border-bottom: 1px solid #e3e3e3; }
  main.bn-main { padding: 1rem; }
}
"""


def _lab_static():
    from jupyter_core.paths import jupyter_path
    for d in jupyter_path('nbconvert', 'templates'):
        p = Path(d)/'lab'/'static'
        if (p/'index.css').is_file(): return p
    die("nbconvert's `lab` template is missing: `pip install nbconvert`")


def _md_inline(s):
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    h = markdown2html_mistune(str(s)).strip()
    return re.sub(r'^<p>(.*)</p>$', r'\1', h, flags=re.S)


class Page:
    def __init__(self, src: Path, proc: Path, base: Path, section: str, subdir: str):
        self.src, self.proc, self.base, self.section, self.subdir = src, proc, base, section, subdir
        self.fm, self.nb = {}, None

    def load(self):
        import nbformat
        self.nb = nbformat.read(self.proc, as_version=4)
        self.fm = pop_frontmatter(self.nb)
        rel = self.src.relative_to(self.base)
        name = self.fm.get('output-file') or re.sub(r'^\d+[a-zA-Z0-9]*_', '', rel.stem.lower()) + '.html'
        self.href = '/'.join([p for p in (self.subdir, *rel.parent.parts) if p] + [name])
        self.title = str(self.fm.get('title') or rel.stem)
        return self

    @property
    def root(self): return '../' * self.href.count('/')


def nav_html(pages, current, cfg):
    root = current.root
    out = [f'<a class="bn-site-title" href="{root}index.html">{html.escape(cfg.get("title", cfg.lib_name))}</a>',
           f'<p class="bn-site-desc">{html.escape(cfg.get("description", ""))}</p>']
    for section in dict.fromkeys(p.section for p in pages):
        out.append(f'<p class="bn-nav-section">{html.escape(section)}</p><ul>')
        for p in (p for p in pages if p.section == section):
            cur = ' aria-current="page"' if p is current else ''
            out.append(f'<li><a href="{root}{p.href}"{cur}>{_md_inline(p.title)}</a></li>')
        out.append('</ul>')
    if cfg.get('git_url'): out.append(f'<a class="bn-repo" href="{cfg.git_url}">Source on GitHub</a>')
    return '\n'.join(out)


def make_exporter():
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    c = Config()
    c.HTMLExporter.exclude_input_prompt = True
    c.HTMLExporter.exclude_output_prompt = True
    c.HTMLExporter.theme = 'light'
    return HTMLExporter(config=c, template_name='lab', template_file='bn_page.html.j2',
                        extra_loaders=[DictLoader({'bn_page.html.j2': PAGE_TEMPLATE})])


def render_page(exporter, page, pages, cfg, built_hrefs):
    nb = quartoish_to_plain(page.nb, html_out=True)
    nb.metadata.pop('widgets', None)  # widget state needs the widget manager from a CDN
    nb.metadata['title'] = re.sub(r'\$([^$]*)\$', r'\1', page.title)
    desc = page.fm.get('description')
    git, branch = cfg.get('git_url', ''), cfg.get('branch', 'main')
    rel_src = page.src.relative_to(REPO).as_posix() if page.src.is_relative_to(REPO) else None
    bn = dict(root=page.root, nav=nav_html(pages, page, cfg), title_html=_md_inline(page.title),
              description_html=_md_inline(desc) if desc else '',
              source_url=f'{git}/blob/{branch}/{rel_src}' if git and rel_src else '',
              source_label=f'Notebook source: {rel_src}' if rel_src else '',
              footer=html.escape(f'Generated from {rel_src or page.src.name} by scripts/build_docs.py '
                                 '(nbdev processors + nbconvert); math by MathJax.'))
    resources = {'metadata': {'name': page.title, 'path': str(page.src.parent)}, 'bn': bn}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    # nbdev doc links point at the published site: keep them inside this build when the page exists
    site = (cfg.get('doc_host', '') + cfg.get('doc_baseurl', '')).rstrip('/')
    if site:
        def _local(m):
            target = m.group(2)
            return f'{m.group(1)}{page.root}{target}' if target.split('#')[0] in built_hrefs else m.group(0)
        body = re.sub(r'(href=")' + re.escape(site) + r'/([^"]*)', _local, body)
    return pandoc_ids(body)


def _pandoc_id(s):
    "Pandoc's (so Quarto's, so nbdev's doc links') heading identifier."
    s = re.sub(r'<[^>]+>', '', urllib.parse.unquote(html.unescape(s)))
    s = re.sub(r'[^\w\s.-]', '', s).strip().lower()
    s = re.sub(r'\s+', '-', s)
    s = re.sub(r'^[^a-z]+', '', s)
    return s or 'section'


def pandoc_ids(body):
    "nbconvert keeps heading text as ids (`VPSchedule`); Quarto's are `vpschedule`: use Quarto's."
    seen, new = {}, {}
    def _h(m):
        old = m.group(2)
        i = base = _pandoc_id(old.replace('-', ' '))
        n = seen.get(base, 0)
        seen[base] = n + 1
        if n: i = f'{base}-{n}'
        new.setdefault(old, i)
        return f'{m.group(1)}id="{i}"'
    body = re.sub(r'(<h[1-6][^>]*?\s)id="([^"]*)"', _h, body)
    return re.sub(r'href="#([^"]*)"', lambda m: f'href="#{new.get(m.group(1), m.group(1))}"', body)


def fallback_index(cfg, base):
    "An index notebook for sites whose nbs/ has no index.ipynb yet."
    import nbformat
    from nbformat.v4 import new_markdown_cell, new_notebook
    nb = new_notebook(cells=[new_markdown_cell(
        f'---\ntitle: {json.dumps(cfg.get("title", cfg.lib_name))}\n'
        f'description: {json.dumps(cfg.get("description", ""))}\n---'),
        new_markdown_cell('`nbs/index.ipynb` does not exist yet; the pages built are listed on the left.')])
    nb.cells[0].cell_type = 'raw'
    p = base/'index.ipynb'
    nbformat.write(nb, p)
    return p


def copy_assets(src_dir: Path, dst_dir: Path):
    if not src_dir.is_dir(): return
    for f in src_dir.rglob('*'):
        rel = f.relative_to(src_dir)
        if not f.is_file() or f.suffix.lower() not in ASSET_EXTS: continue
        if any(part.startswith(('.', '_')) for part in rel.parts[:-1]): continue
        (dst_dir/rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst_dir/rel)


def _rel(p: Path):
    return p.relative_to(REPO).as_posix() if p.is_relative_to(REPO) else p.name


def _prepare_out(out: Path):
    if out.exists():
        if out == REPO or REPO.is_relative_to(out.resolve()): die(f'refusing to clear {out}')
        if any(out.iterdir()) and not (out/SITE_MARKER).exists():
            die(f'{out} exists, is not empty and was not made by this script; remove it or pick another --out')
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out/SITE_MARKER).write_text('built by scripts/build_docs.py\n')


def _matches(nb: Path, only):
    if not only: return True
    return any(o in (nb.stem, nb.name) or nb.as_posix().endswith('/' + o.lstrip('./')) for o in only)


def build_site(out: Path, nbs_path: Path, tutorials: Path, only, workers):
    t0 = time.time()
    cfg = get_cfg()
    es5 = ensure_mathjax()
    srcs = [(f, nbs_path, 'Notebooks', '') for f in find_notebooks(nbs_path)]
    srcs += [(f, tutorials, 'Tutorials', 'tutorials') for f in find_notebooks(tutorials)]
    if not srcs: die(f'no notebooks found in {nbs_path}')
    if only:
        missing = [o for o in only if not any(_matches(f, [o]) for f, *_ in srcs) and o not in ('index', 'index.ipynb')]
        if missing: die(f'--only: no notebook matches {missing}')
        srcs = [s for s in srcs if _matches(s[0], only)]
    with tempfile.TemporaryDirectory(prefix='boot_nb_docs_') as tmp:
        tmp = Path(tmp)
        has_index = any(f == nbs_path/'index.ipynb' for f, *_ in srcs)
        if not has_index:
            print(f'build_docs: warning: {nbs_path}/index.ipynb missing (or not selected): writing a placeholder index',
                  file=sys.stderr)
            fb_dir = tmp/'fallback'; fb_dir.mkdir()
            srcs.insert(0, (fallback_index(cfg, fb_dir), fb_dir, 'Notebooks', ''))
        pages = [Page(f, tmp/'proc'/sub/f.relative_to(base), base, sec, sub) for f, base, sec, sub in srcs]
        print(f'build_docs: processing {len(pages)} notebook(s) with nbdev ...', flush=True)
        process_notebooks([(p.src, p.proc) for p in pages], workers)
        for p in pages: p.load()
        # index first, then the rest in path order within their section
        pages.sort(key=lambda p: (p.section != 'Notebooks', p.href != 'index.html', p.section, p.src.as_posix()))
        hrefs = [p.href for p in pages]
        dup = {h for h in hrefs if hrefs.count(h) > 1}
        if dup: die(f'several notebooks map to the same page: {sorted(dup)}')
        _prepare_out(out)
        static = out/'_static'
        static.mkdir()
        copy_mathjax(es5, static)
        lab = _lab_static()
        (static/'jupyter.css').write_text((lab/'index.css').read_text() + '\n' + (lab/'theme-light.css').read_text())
        (static/'site.css').write_text(SITE_CSS)
        copy_assets(nbs_path, out)
        copy_assets(tutorials, out/'tutorials')
        exporter = make_exporter()
        built = set(hrefs)
        for p in pages:
            dst = out/p.href
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(render_page(exporter, p, pages, cfg, built), encoding='utf-8')
            print(f'  {_rel(p.src)} -> {dst}')
        manifest = [dict(src=_rel(p.src), href=p.href, title=p.title, section=p.section) for p in pages]
        (out/'pages.json').write_text(json.dumps(manifest, indent=1) + '\n')
    print(f'build_docs: wrote {len(pages)} page(s) to {out} in {time.time()-t0:.1f}s')
    return pages


# ----------------------------------------------------------------------------- README.md

def readme_text(nbs_path: Path, workers=1):
    cfg = get_cfg()
    src = nbs_path/cfg.get('readme_nb', 'index.ipynb')
    if not src.exists(): die(f'{src} not found: README.md is generated from it')
    import nbformat
    from nbconvert import MarkdownExporter
    with tempfile.TemporaryDirectory(prefix='boot_nb_readme_') as tmp:
        dst = Path(tmp)/src.name
        process_notebooks([(src, dst)], workers)
        nb = nbformat.read(dst, as_version=4)
    fm = pop_frontmatter(nb)
    nb = quartoish_to_plain(nb, html_out=False)
    nb.metadata.setdefault('language_info', {'name': 'python'})
    head = ''
    if fm.get('title'): head += f'# {fm["title"]}\n\n'
    if fm.get('description'): head += f'> {fm["description"]}\n\n'
    stem = src.stem
    body, res = MarkdownExporter().from_notebook_node(
        nb, resources={'output_files_dir': f'{stem}_files', 'unique_key': stem, 'metadata': {'name': stem}})
    text = head + body.strip() + '\n'
    text = re.sub(r'(?m)^[ \t]+$', '', text)
    text = re.sub(r'\n{3,}', '\n\n', text)
    return text, res.get('outputs', {})


def build_readme(nbs_path: Path, readme: Path, check=False):
    t0 = time.time()
    text, outputs = readme_text(nbs_path)
    if check:
        cur = readme.read_text(encoding='utf-8') if readme.exists() else ''
        if cur != text:
            die(f'{readme.name} is out of date with {nbs_path.name}/index.ipynb: run `python scripts/build_docs.py --readme`')
        print(f'build_docs: {readme} is up to date'); return
    readme.parent.mkdir(parents=True, exist_ok=True)
    readme.write_text(text, encoding='utf-8')
    for name, data in outputs.items():
        p = readme.parent/name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    print(f'build_docs: wrote {readme} ({len(outputs)} image(s)) in {time.time()-t0:.1f}s')


# ----------------------------------------------------------------------------- CLI

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='_site', help='output folder for the pages (default: _site)')
    ap.add_argument('--readme', nargs='?', const=str(REPO/'README.md'), metavar='FILE',
                    help='generate README.md (or FILE) from nbs/index.ipynb instead of the pages')
    ap.add_argument('--check', action='store_true', help='with --readme: fail if README.md is out of date')
    ap.add_argument('--only', nargs='+', metavar='NB', help='build only these notebooks (stem, file name or path)')
    ap.add_argument('--path', default=None, help="notebooks folder (default: settings.ini's nbs_path)")
    ap.add_argument('--tutorials', default=str(REPO/'tutorials'), help='tutorial notebooks folder')
    ap.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1))
    a = ap.parse_args(argv)
    try: import nbdev, nbconvert  # noqa: F401
    except ImportError as e: die(f'{e.name} is missing: pip install -e ".[dev]" (nbdev==2.4.14, nbconvert)')
    out = Path(a.out).resolve()
    if a.readme: a.readme = Path(a.readme).resolve()
    os.chdir(REPO)  # nbdev finds settings.ini from the working directory
    nbs_path = Path(a.path).resolve() if a.path else get_cfg().nbs_path
    if a.readme: build_readme(nbs_path, Path(a.readme).resolve(), check=a.check)
    else: build_site(out, nbs_path, Path(a.tutorials).resolve(), a.only, a.workers)


if __name__ == '__main__':
    main()
