"""Sphinx configuration of boot_nb's documentation: `sphinx-build -c docs . _site` (from the repo root).

Pages are the notebooks of nbs/ and tutorials/ as committed, outputs and figures included: myst-nb
renders them and never executes them. nbdev's cell directives are applied on the way (`source-read`):
`#| hide` and `#| default_exp` cells are dropped, `#| export` cells fold their source under the
autodoc entry of every class and function they define. MathJax 3 comes from the npm registry into
_docs_cache/ (no CDN), so the pages build and render offline.
"""
import ast, json, re, shutil, subprocess, sys
from pathlib import Path

import nbformat
from nbdev.process import extract_directives

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # autodoc imports boot_nb from this checkout

project, author = 'boot_nb', 'boot_nb team'
extensions = ['myst_nb', 'sphinx.ext.autodoc']
html_theme = 'furo'
html_title = 'boot_nb'
html_extra_path = ['root']  # index.html at the site's root, pointing at nbs/index.html
root_doc = 'nbs/index'
# The source folder is the repo root, so links between notebooks work as they do on GitHub.
exclude_patterns = [p.name for p in ROOT.iterdir() if p.name not in ('nbs', 'tutorials')]
exclude_patterns += ['**/_*', '**/.*', 'tutorials/runs']
include_patterns = ['nbs/*.ipynb', 'tutorials/*.ipynb']

nb_execution_mode = 'off'   # show what is committed; a slow cell must never run (or write into boot_nb/)
nb_ipywidgets_js = {}       # widget state needs scripts from a CDN; explorers have static figures instead
myst_enable_extensions = ['dollarmath', 'amsmath']
myst_heading_anchors = 3
default_role = 'py:obj'     # `name` in a docstring links to its API entry (or shows as code)
autodoc_member_order = 'bysource'
autodoc_default_options = {'undoc-members': True}
autodoc_inherit_docstrings = False  # nn.Module.forward's docstring says nothing about ours
nb_code_prompt_show, nb_code_prompt_hide = 'Show exported source', 'Hide exported source'

MATHJAX = '3.2.2'
_mj = ROOT/'_docs_cache'/'node_modules'/'mathjax'/'es5'/'tex-svg-full.js'
if not _mj.is_file():
    if not shutil.which('npm'):
        sys.exit('docs: MathJax is installed from the npm registry and npm was not found: apt-get install -y npm')
    subprocess.run(['npm', 'install', '--prefix', str(ROOT/'_docs_cache'), '--no-save', '--no-audit', '--no-fund',
                    '--loglevel=error', f'mathjax@{MATHJAX}'], check=True)
html_static_path = [str(_mj)]
mathjax_path = _mj.name
mathjax3_config = {'tex': {'packages': {'[-]': ['noundefined']}},  # an unknown macro is an error, not red text
                   'svg': {'fontCache': 'global'}}


def _public(name): return not name.startswith('_')


def _patched(d):
    "The class a fastcore `@patch` function is a method of (its first argument's annotation), or None."
    if not any(getattr(x, 'id', None) == 'patch' for x in d.decorator_list) or not d.args.args: return None
    return getattr(d.args.args[0].annotation, 'id', None)


def _api_entry(d, module):
    "The reStructuredText that documents one top-level statement of an exported cell ('' if it defines nothing public)."
    if isinstance(d, ast.FunctionDef) and _public(d.name):
        cls = _patched(d)
        return (f'.. automethod:: boot_nb.{module}.{cls}.{d.name}' if cls else
                f'.. autofunction:: boot_nb.{module}.{d.name}')
    if isinstance(d, ast.ClassDef) and _public(d.name):  # the methods it defines, as _modidx lists them (no inherited ones)
        methods = ', '.join(f.name for f in d.body if isinstance(f, ast.FunctionDef) and _public(f.name))
        return f'.. autoclass:: boot_nb.{module}.{d.name}' + (f'\n   :members: {methods}' if methods else '')
    if not isinstance(d, (ast.Assign, ast.AnnAssign)): return ''
    targets = [e for t in (d.targets if isinstance(d, ast.Assign) else [d.target]) for e in getattr(t, 'elts', [t])]  # a, b = ... too
    names = [t.id for t in targets if isinstance(t, ast.Name) and _public(t.id)]
    return '\n\n'.join(f'.. py:data:: {n}\n   :module: boot_nb.{module}' for n in names)


def _api_cell(cell, module):
    "A markdown cell with the API entries of what an exported cell defines, or None."
    try: tree = ast.parse(cell.source)
    except SyntaxError: return None
    entries = [e for e in (_api_entry(d, module) for d in tree.body) if e]
    # eval-rst: autodoc writes reStructuredText, which MyST would read as markdown
    return nbformat.v4.new_markdown_cell('```{eval-rst}\n' + '\n\n'.join(entries) + '\n```') if entries else None


def plain_docstring(app, what, name, obj, options, lines):
    "boot_nb's docstrings are plain text with `code` (as nbdev writes them), not reStructuredText."
    lines[:] = [l.replace('*', r'\*').replace('|', r'\|') for l in lines]


def nbdev_directives(app, docname, source):
    "Apply nbdev's cell directives to a notebook before myst-nb reads it."
    if app.env.doc2path(docname).suffix != '.ipynb': return
    nb = nbformat.reads(source[0], as_version=4)
    nb.metadata.setdefault('language_info', {'name': 'python'})  # nbdev_clean strips it; myst-nb needs it
    cells, module = [], None
    for cell in nb.cells:
        if cell.cell_type == 'code':
            d = extract_directives(cell, remove=False)
            if 'default_exp' in d: module = d['default_exp'][0]
            if d.keys() & {'hide', 'default_exp'}: continue  # as nbdev: a hidden cell's outputs are hidden too
            if d.get('echo:') == ['false']: cell.metadata.setdefault('tags', []).append('remove-input')
            cell.source = re.sub(r'^(\s*#\|.*\n?)+', '', cell.source)
            cell.outputs = [o for o in cell.outputs if 'application/vnd.jupyter.widget-view+json' not in o.get('data', {})]
            if 'export' in d:
                cell.metadata.setdefault('tags', []).append('hide-input')
                api = _api_cell(cell, d['export'][0] if d['export'] else module)
                if api: cells.append(api)
        cells.append(cell)
    if docname == root_doc:  # written for README.md at the repo root: its links are relative to the root
        for c in cells:
            if c.cell_type == 'markdown': c.source = re.sub(r'\]\((?!\w+:|/|#)', '](../', c.source)
        # the site's navigation: every notebook, then the tutorials
        cells.append(nbformat.v4.new_markdown_cell('```{toctree}\n:hidden:\n:glob:\n\n*\n../tutorials/*\n```'))
    nb.cells = cells
    source[0] = nbformat.writes(nb)


def setup(app):
    app.connect('source-read', nbdev_directives)
    app.connect('autodoc-process-docstring', plain_docstring)
