"""ExodusConfig: validation names the field, JSON round trip, derived values."""

import pytest

from spikecore.config import ConfigError, ExodusConfig


def test_defaults_are_valid_and_round_trip():
    cfg = ExodusConfig()
    assert ExodusConfig.from_json(cfg.to_json()) == cfg
    clamped = cfg.replace(u_min=-2.0, alpha=0.5, reset_order="before_decay", backward="slayer")
    assert ExodusConfig.from_json(clamped.to_json()) == clamped


def test_save_and_load(tmp_path):
    cfg = ExodusConfig(alpha=0.75, surrogate="fast_sigmoid")
    cfg.save(tmp_path / "c.json")
    assert ExodusConfig.load(tmp_path / "c.json") == cfg


def test_derived_values():
    cfg = ExodusConfig(alpha=0.5, threshold=1.5, u_frac=12, alpha_frac=16, u_min=-1.0)
    assert cfg.theta_q == 1.5 * 4096
    assert cfg.u_min_q == -4096
    assert cfg.alpha_q == 1 << 15
    assert cfg.alpha_bits == 17
    assert ExodusConfig(alpha=1.0).alpha_q == 1 << 16  # IF is exact
    assert cfg.update_shift == cfg.grad_frac - cfg.u_frac + cfg.lr_shift
    assert ExodusConfig(alpha=ExodusConfig.alpha_from_tau(20.0)).tau == pytest.approx(20.0)
    assert not cfg.slayer_mode and cfg.replace(backward="slayer").slayer_mode


@pytest.mark.parametrize("changes, field", [
    ({"alpha": 0.0}, "alpha"),
    ({"alpha": 1.5}, "alpha"),
    ({"threshold": 1.0001}, "threshold"),       # off the membrane grid
    ({"threshold": -1.0}, "threshold"),
    ({"u_min": 2.0}, "u_min"),                  # above the threshold
    ({"reset_order": "sideways"}, "reset_order"),
    ({"backward": "magic"}, "backward"),
    ({"surrogate": "tanh"}, "surrogate"),
    ({"surrogate_width": 0.0}, "surrogate_width"),
    ({"lut_size": 1000}, "lut_size"),
    ({"lanes": 3}, "lanes"),
    ({"acc_bits": 20}, "acc_bits"),
    ({"grad_frac": 30}, "grad_frac"),
    ({"grad_bits": 48, "acc_bits": 64}, "grad_bits"),  # int64 products would overflow
    ({"layer_sizes": (5,)}, "layer_sizes"),
    ({"u_bits": True}, "u_bits"),
])
def test_invalid_fields_are_named(changes, field):
    with pytest.raises(ConfigError, match=f"'{field}"):
        ExodusConfig(**changes)


def test_json_errors():
    with pytest.raises(ConfigError, match="unknown field"):
        ExodusConfig.from_dict({"bogus": 1})
    with pytest.raises(ConfigError, match="not valid JSON"):
        ExodusConfig.from_json("{")
    with pytest.raises(ConfigError, match="'format'"):
        ExodusConfig.from_json('{"format": "other"}')
    with pytest.raises(ConfigError, match="x.json: field 'alpha'"):
        ExodusConfig.from_json('{"alpha": 2}', source="x.json")
