"""The README and docs/ as a user reads them: links resolve, commands run.

Every relative link (and image) in ``README.md``, ``CHANGELOG.md`` and
``docs/*.md`` must point at a file or folder of the checkout, and a
``#fragment`` at a heading of the page it names.  Every ``bash``/``sh`` code
block runs, in a scratch folder that links the checkout's folders (so
commands use the same relative paths as in the checkout and write nowhere
in it), with the environment's ``python`` and ``mim`` first on ``PATH`` --
unless the line above the block says what it needs that a test run has not::

    <!-- needs: gpu dataset -->

Those blocks are reported as skipped with their needs.  The words are
:data:`NEEDS`; an unknown one fails, so a typo cannot hide a block.
"""
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import List, NamedTuple, Optional, Tuple

import pytest

from helpers import REPO

PAGES = sorted([REPO / 'README.md', REPO / 'CHANGELOG.md', *(REPO / 'docs').glob('*.md')])
#: What a block may need that a test run does not have.
NEEDS = {
    'gpu': 'a CUDA GPU',
    'dataset': 'a real dataset (COCO, ADE20K, ImageNet)',
    'checkpoint': 'a trained or official checkpoint',
    'long': 'minutes of CPU time',
    'network': 'package downloads',
    'regular-install': 'mmparc installed from a wheel, not editable',
}
#: Folders and files of the checkout the scratch folder links.
LINKED = ('configs', 'demo', 'docs', 'mmparc', 'tools', 'requirements', 'model-index.yml',
          'setup.py', 'setup.cfg', 'Makefile', 'README.md')
BLOCK_TIMEOUT = 180

_FENCE = re.compile(r'^(\s*)```(\w*)\s*$')
_NEEDS = re.compile(r'^\s*<!--\s*needs:\s*([\w\s-]+?)\s*-->\s*$')
_LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')


class Block(NamedTuple):
    page: Path
    line: int
    lang: str
    text: str
    needs: Tuple[str, ...]


def code_blocks(page: Path) -> List[Block]:
    """Fenced blocks of a page, with the needs marker on the line above (if any)."""
    lines = page.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, lang, start = match.group(1), match.group(2), i
        i += 1
        body = []
        while i < len(lines) and not re.match(rf'^{indent}```\s*$', lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f'{page.name}:{start + 1}: unclosed code block')
        i += 1
        above = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), '')
        marker = _NEEDS.match(above)
        needs = tuple(marker.group(1).split()) if marker else ()
        blocks.append(Block(page, start + 1, lang, '\n'.join(body), needs))
    return blocks


def _prose(page: Path) -> str:
    """The page without its code blocks (links in code are not links)."""
    text = page.read_text()
    return re.sub(r'^([ \t]*)```[^\n]*\n.*?^\1```[ \t]*$', '', text,
                  flags=re.MULTILINE | re.DOTALL)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r'[`*_]', '', heading.strip().lower())
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def _anchors(page: Path) -> set:
    return {_slug(line.lstrip('#')) for line in _prose(page).splitlines()
            if re.match(r'^#{1,6} ', line)}


SHELL_BLOCKS = [b for page in PAGES for b in code_blocks(page) if b.lang in ('bash', 'sh')]


def test_pages_exist_and_readme_is_short():
    assert (REPO / 'docs' / 'architecture.md') in PAGES
    lines = len((REPO / 'README.md').read_text().splitlines())
    assert 150 <= lines <= 250, f'README.md has {lines} lines; the details belong in docs/'


@pytest.mark.parametrize('page', PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(page):
    broken = []
    for target in _LINK.findall(_prose(page)):
        if re.match(r'^[a-z][a-z0-9+.-]*:', target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition('#')
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f'{target} (no {dest})')
        elif fragment and dest.suffix == '.md' and fragment not in _anchors(dest):
            broken.append(f'{target} (no heading #{fragment} in {dest.name})')
    assert not broken, f'{page.name}: broken links: {broken}'


@pytest.mark.parametrize('block', SHELL_BLOCKS,
                         ids=lambda b: f'{b.page.relative_to(REPO).as_posix()}:{b.line}')
def test_shell_block_runs(block, tmp_path):
    unknown = set(block.needs) - set(NEEDS)
    assert not unknown, f'{block.page.name}:{block.line}: unknown needs {sorted(unknown)}'
    if block.needs:
        pytest.skip('needs ' + ', '.join(NEEDS[n] for n in block.needs))
    for name in LINKED:
        (tmp_path / name).symlink_to(REPO / name)
    env = dict(os.environ, PATH=f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}',
               MPLBACKEND='Agg', PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1')
    proc = subprocess.run(['bash', '-euo', 'pipefail', '-c', block.text], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    assert proc.returncode == 0, (f'{block.page.name}:{block.line} exited {proc.returncode}\n'
                                  f'{block.text}\n--- stdout\n{proc.stdout[-2000:]}\n'
                                  f'--- stderr\n{proc.stderr[-3000:]}')


def test_needs_markers_stand_above_blocks():
    """A marker that is not directly above a code block marks nothing: a mistake."""
    for page in PAGES:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            if _NEEDS.match(line):
                following: Optional[str] = next((l for l in lines[i + 1:] if l.strip()), None)
                assert following is not None and _FENCE.match(following), \
                    f'{page.name}:{i + 1}: a needs marker with no code block under it'
