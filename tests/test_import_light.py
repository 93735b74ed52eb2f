import subprocess
import sys

HEAVY = ["muq", "dac", "encodec", "transformers", "phonemizer", "librosa", "onnxruntime", "music21",
         "torchaudio", "accelerate", "peft"]


def test_import_toolkit_loads_no_optional_package():
    code = ("import sys, toolkit, toolkit.registry, toolkit.config, toolkit.audio, toolkit.protocols; "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_loading_every_component_module_stays_light():
    """Registering all built-in components must not import the heavy packages either."""
    code = ("import sys; from toolkit.registry import load_components; load_components(); "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_optional_package_names_the_extra():
    from toolkit.optional import MissingDependencyError, require

    try:
        require("surely_not_installed_pkg", "muq", "MuQ-MuLan style embeddings")
    except MissingDependencyError as err:
        assert "pip install 'toolkit[muq]'" in str(err) and "MuQ-MuLan" in str(err)
    else:
        raise AssertionError("require() should fail for a missing package")
