import pytest
import yaml

from toolkit.config import ConfigError, apply_overrides, load_config, parse_override, save_config


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def confs(tmp_path):
    write(tmp_path / "a.yaml", "codec: {type: oobleck, chunk: 128}\nbackbone: {type: dit, depth: 16, dim: 2048}\n")
    write(tmp_path / "b.yaml", "backbone: {depth: 8}\nsteps: 32\n")
    write(tmp_path / "main.yaml", "_base_: [a.yaml, b.yaml]\nsteps: 16\nname: demo\n")
    return tmp_path


def test_bases_merge_left_to_right_then_file(confs):
    cfg = load_config(confs / "main.yaml")
    assert cfg.backbone.depth == 8 and cfg.backbone.dim == 2048
    assert cfg.steps == 16 and cfg.codec.chunk == 128
    assert "_base_" not in cfg


def test_overrides_set_values_with_yaml_types(confs):
    cfg = load_config(confs / "main.yaml", ["backbone.depth=4", "lr=1e-4", "flags=[1,2]", "new.key=x"])
    assert cfg.backbone.depth == 4 and cfg.backbone.dim == 2048
    assert cfg.lr == pytest.approx(1e-4) and list(cfg.flags) == [1, 2] and cfg.new.key == "x"


def test_new_type_replaces_the_whole_node(confs):
    cfg = load_config(confs / "main.yaml", ["codec=dac"])
    assert cfg.codec == "dac"
    cfg = load_config(confs / "main.yaml", ["codec.type=mel"])
    assert dict(cfg.codec) == {"type": "mel"}
    cfg = load_config(confs / "main.yaml", ["codec.type=mel", "codec.n_mels=80"])
    assert dict(cfg.codec) == {"type": "mel", "n_mels": 80}
    cfg = load_config(confs / "main.yaml", ["codec={type: encodec, bandwidth: 6}"])
    assert dict(cfg.codec) == {"type": "encodec", "bandwidth": 6}


def test_resolved_config_round_trips(confs, tmp_path):
    cfg = load_config(confs / "main.yaml", ["backbone.depth=2"])
    out = save_config(cfg, tmp_path / "exp" / "config.yaml")
    assert yaml.safe_load(out.read_text())["backbone"] == {"type": "dit", "depth": 2, "dim": 2048}
    assert load_config(out) == cfg
    assert not list((tmp_path / "exp").glob(".*tmp*")), "no temporary file is left behind"


def test_errors_name_the_problem(tmp_path, confs):
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    write(tmp_path / "badbase.yaml", "_base_: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"missing.yaml \(a _base_ of .*badbase.yaml\)"):
        load_config(tmp_path / "badbase.yaml")
    write(tmp_path / "loop1.yaml", "_base_: loop2.yaml\n")
    write(tmp_path / "loop2.yaml", "_base_: loop1.yaml\n")
    with pytest.raises(ConfigError, match="_base_ inheritance loops"):
        load_config(tmp_path / "loop1.yaml")
    write(tmp_path / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(tmp_path / "list.yaml")
    write(tmp_path / "broken.yaml", "a: [1, 2\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="must look like key=value"):
        parse_override("backbone.depth")
    with pytest.raises(ConfigError, match="empty key"):
        parse_override("backbone..depth=3")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_override("x=[1,")


def test_apply_overrides_does_not_mutate_input(confs):
    cfg = load_config(confs / "main.yaml")
    apply_overrides(cfg, ["steps=1"])
    assert cfg.steps == 16
