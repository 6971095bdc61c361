"""Serving a shipped agent needs neither torch nor stable-baselines3: they are the learner's tools only."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_decide_runs_without_importing_torch_or_sb3():
    script = textwrap.dedent("""
        import io, sys
        import numpy as np
        from PIL import Image
        from adacompress.agents.policies import load_policy
        rng = np.random.default_rng(0)
        image = Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
        buffer = io.BytesIO(); image.save(buffer, format="PNG")
        decision = load_policy("pretrained:local-lite2").decide(buffer.getvalue())
        assert decision.data[:2] == b"\\xff\\xd8", "a JPEG upload"
        print(sorted(m for m in ("torch", "stable_baselines3") if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
