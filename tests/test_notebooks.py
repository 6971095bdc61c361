"""The notebooks run top to bottom on a fresh kernel, offline, and are committed without outputs.

Each notebook ends with a cell tagged `summary` that prints one JSON line of what it measured; the tests
read it from the executed notebook, so a notebook that runs but computes nonsense fails too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 300


def read(name: str):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def execute(name: str) -> tuple[dict, float]:
    """Run the notebook in a fresh kernel from the notebooks folder: (its summary JSON, seconds taken)."""
    notebook = read(name)
    started = time.perf_counter()
    nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    elapsed = time.perf_counter() - started
    summary_cells = [cell for cell in notebook.cells if "summary" in cell.metadata.get("tags", [])]
    assert len(summary_cells) == 1, f"{name}: expected one cell tagged 'summary'"
    printed = "".join(output.get("text", "") for output in summary_cells[0].outputs if output.output_type == "stream")
    return json.loads(printed.strip().splitlines()[-1]), elapsed


@pytest.mark.parametrize("name", ["quickstart.ipynb", "drift.ipynb"])
def test_committed_notebooks_carry_no_outputs(name):
    for number, cell in enumerate(read(name).cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {number} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{name} cell {number} has an execution count: clear it"


def test_quickstart_runs_top_to_bottom():
    summary, elapsed = execute("quickstart.ipynb")
    print(f"quickstart.ipynb executed in {elapsed:.1f} s")
    assert summary["images"] == 27
    fixed, agent, oracle = summary["fixed"], summary["agent"], summary["oracle"]
    assert fixed["fixed:75"] == pytest.approx(1.0)
    sizes = list(fixed.values())
    assert all(a < b for a, b in zip(sizes, sizes[1:], strict=False)), fixed
    assert oracle["accuracy"] == 1.0 and oracle["bytes_vs_reference"] <= agent["bytes_vs_reference"]
    assert agent["bytes_vs_reference"] < fixed["fixed:25"] and agent["accuracy"] >= 0.8
    assert summary["tiny_agent"]["steps"] > 0 and summary["tiny_agent"]["heldout_images"] == 9
    proxy = summary["proxy"]
    assert proxy["answered"] == 5 and 0 < proxy["sent"] < proxy["reference"]


def test_drift_runs_top_to_bottom():
    summary, elapsed = execute("drift.ipynb")
    print(f"drift.ipynb executed in {elapsed:.1f} s")
    assert set(summary) == {"adacompress", "paper"}
    for name, phases in summary.items():
        day, night = phases
        assert (day["phase"], day["images"], night["phase"], night["images"]) == ("day", 30, "night", 50), name
        assert 0.0 < night["estimate_calls_overhead"] < 1.0, name
        assert night["bytes_vs_reference"] > day["bytes_vs_reference"], f"{name}: night frames should cost more bytes"
        assert 0.0 <= night["accuracy"] <= day["accuracy"] <= 1.0, name
