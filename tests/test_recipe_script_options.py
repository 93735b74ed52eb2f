"""The shared option parsing and stage selection of egs/*/run.sh."""

import subprocess
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(tmp_path, *args):
    script = tmp_path / "run.sh"
    script.write_text(textwrap.dedent(f"""
        set -euo pipefail
        . {ROOT}/egs/_common/stages.sh
        stage=0; stop_stage=4; conf=default.yaml; exp=exp/x
        _recipe_options="stage stop_stage conf exp"
        . {ROOT}/egs/_common/parse_options.sh
        echo "conf=$conf exp=$exp overrides=${{overrides[*]:-}}"
        for s in 0 1 2 3 4; do if stage_enabled $s; then echo "stage $s"; fi; done
    """))
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True)


def test_options_overrides_and_stage_range(tmp_path):
    res = run_script(tmp_path, "--stage", "1", "--stop-stage=2", "--conf", "c.yaml", "a.b=3", "codec=mel")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["conf=c.yaml exp=exp/x overrides=a.b=3 codec=mel", "stage 1", "stage 2"]


def test_unknown_option_and_stray_argument_fail(tmp_path):
    res = run_script(tmp_path, "--nope", "1")
    assert res.returncode == 2 and "unknown option --nope" in res.stderr
    res = run_script(tmp_path, "stray")
    assert res.returncode == 2 and "unexpected argument 'stray'" in res.stderr
    res = run_script(tmp_path, "--conf")
    assert res.returncode == 2 and "needs a value" in res.stderr


def test_help_lists_options(tmp_path):
    res = run_script(tmp_path, "--help")
    assert res.returncode == 0 and "--stop_stage 4" in res.stdout
