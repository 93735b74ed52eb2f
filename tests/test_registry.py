import json
import subprocess
import sys
import textwrap

import pytest
import torch

from toolkit import protocols
from toolkit.registry import CODECS, REGISTRIES, Registry, RegistryError, split_node


class Toy(protocols.Codec):
    """A toy codec."""

    sample_rate, channels, hop_length = 8, 1, 2

    def __init__(self, latent_dim=3, scale=1.0):
        super().__init__()
        self.latent_dim, self.scale = latent_dim, scale

    def encode(self, wav):
        return wav

    def decode(self, z):
        return z


@pytest.fixture
def reg():
    return Registry("codec", protocols.Codec)


def test_register_and_build_from_name_and_node(reg):
    reg.register("toy")(Toy)
    assert reg.names() == ["toy"]
    assert isinstance(reg.build("toy"), Toy)
    built = reg.build({"type": "toy", "scale": 2.0}, latent_dim=5)
    assert (built.scale, built.latent_dim) == (2.0, 5)
    assert reg.describe() == {"toy": "A toy codec."}


def test_duplicate_name_is_rejected(reg):
    reg.register("toy")(Toy)

    class Other(Toy):
        pass

    with pytest.raises(RegistryError, match="'toy' is already registered by .*Toy"):
        reg.register("toy")(Other)


def test_class_outside_protocol_is_rejected(reg):
    class NotACodec(torch.nn.Module):
        pass

    with pytest.raises(RegistryError, match="must subclass toolkit.protocols.Codec"):
        reg.register("bad")(NotACodec)


def test_incomplete_protocol_is_rejected(reg):
    class Half(protocols.Codec):
        def encode(self, wav):
            return wav

    with pytest.raises(RegistryError, match="does not implement decode"):
        reg.register("half")(Half)


def test_unknown_name_lists_known_names(reg):
    reg.register("toy")(Toy)
    with pytest.raises(RegistryError, match=r"unknown codec 'nope'; known codecs: toy"):
        reg.build("nope")


def test_node_errors(reg):
    reg.register("toy")(Toy)
    with pytest.raises(RegistryError, match="needs a 'type' key"):
        reg.build({"scale": 1})
    with pytest.raises(RegistryError, match="must be a name or a mapping"):
        reg.build(3)
    with pytest.raises(RegistryError, match="cannot build codec 'toy'.*unexpected keyword"):
        reg.build({"type": "toy", "nonsense": 1})
    with pytest.raises(RegistryError, match="latent_dim follow from other components"):
        reg.build({"type": "toy", "latent_dim": 4}, latent_dim=5)


def test_split_node_accepts_omegaconf():
    from omegaconf import OmegaConf

    assert split_node(OmegaConf.create({"type": "a", "x": 1})) == ("a", {"x": 1})
    assert split_node("a") == ("a", {})


def test_every_kind_has_a_registry():
    assert set(REGISTRIES) == {"codec", "backbone", "objective", "sampler", "conditioner", "recipe", "metric",
                               "dataset"}


def test_builtin_components_are_listed_by_the_inspect_cli():
    out = subprocess.run([sys.executable, "-m", "toolkit.bin.inspect", "components"], capture_output=True,
                         text=True, check=True).stdout
    # Names from a fresh interpreter: other tests register toy components in this one.
    code = "from toolkit.registry import REGISTRIES; print(' '.join(n for r in REGISTRIES.values() for n in r.names()))"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert {"dit_diffrhythm", "cfm", "flow", "mel", "diffrhythm", "lyrics_lrc"} <= set(names)
    for kind in REGISTRIES:
        assert f"{kind}s:" in out
    for name in names:
        assert f"\n  {name} " in out


def test_inspect_config_prints_a_section_that_round_trips_as_an_override(tmp_path, capsys):
    from toolkit.bin import inspect as inspect_cli
    from toolkit.config import apply_overrides, load_config

    conf = tmp_path / "c.yaml"
    conf.write_text("recipe: diffrhythm\nsampler: {type: flow, steps: 8, method: midpoint, sway_coef: -1.0}\n"
                    "conditions: {style: {conditioner: style_features}}\n")
    assert inspect_cli.main(["config", str(conf), "sampler", "sampler.steps=4"]) == 0
    line = capsys.readouterr().out.strip()
    assert json.loads(line) == {"type": "flow", "steps": 4, "method": "midpoint", "sway_coef": -1.0}
    # the printed section, given as `sampler=<it>`, replaces another config's sampler whole
    other = load_config(conf, ["sampler={type: flow, steps: 31, time_grid: epss}"])
    other = apply_overrides(other, [f"sampler={line}"])
    assert dict(other.sampler) == json.loads(line)
    assert inspect_cli.main(["config", str(conf), "conditions.style.conditioner"]) == 0
    assert capsys.readouterr().out == "style_features\n"  # a scalar as it is, for shell comparisons
    assert inspect_cli.main(["config", str(conf), "objective"]) == 2
    assert "has no 'objective'" in capsys.readouterr().err


def test_plugin_entry_point_registers_a_component(tmp_path):
    """A separate installed package adds a codec through the toolkit.plugins entry-point group."""
    pkg = tmp_path / "site"
    (pkg / "toy_plugin").mkdir(parents=True)
    (pkg / "toy_plugin" / "__init__.py").write_text(textwrap.dedent("""
        from toolkit import protocols
        from toolkit.registry import CODECS

        @CODECS.register("plugin_identity")
        class PluginIdentity(protocols.Codec):
            '''Identity codec from a plugin.'''
            sample_rate, channels, hop_length, latent_dim = 16000, 1, 1, 1
            def encode(self, wav): return wav.transpose(1, 2)
            def decode(self, z): return z.transpose(1, 2)
    """))
    dist = pkg / "toy_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[toolkit.plugins]\ntoy = toy_plugin\n")
    code = ("from toolkit.registry import CODECS; c = CODECS.build('plugin_identity'); "
            "print(type(c).__name__, 'plugin_identity' in CODECS.names())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(pkg), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}).stdout
    assert out.split() == ["PluginIdentity", "True"]


def test_global_codec_registry_is_the_protocol_checked_one():
    assert CODECS.base is protocols.Codec
