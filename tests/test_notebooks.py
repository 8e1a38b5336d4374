"""Every notebook under ``notebooks/`` runs end to end (nbclient), small.

Convention (see ``notebooks/README.md``): the first code cell is tagged ``parameters`` and
holds plain assignments; the notebook's metadata ``wedcache.test_parameters`` maps some of
those names to small values. The test inserts a cell with them right after the parameters
cell (as papermill does), adds ``OUT`` (a scratch folder), and fails on any cell's error.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def with_test_parameters(notebook: nbformat.NotebookNode, out: Path) -> nbformat.NotebookNode:
    cells = notebook.cells
    index = next((i for i, c in enumerate(cells) if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])),
                 None)
    assert index is not None, "the notebook has no code cell tagged 'parameters'"
    values = {**notebook.metadata.get("wedcache", {}).get("test_parameters", {}), "OUT": str(out)}
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cells.insert(index + 1, nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]}))
    return notebook


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"capacity_planning.ipynb", "ttl_tuning.ipynb", "load_test_analysis.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_runs_end_to_end(path, tmp_path):
    notebook = with_test_parameters(nbformat.read(path, as_version=4), tmp_path)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
