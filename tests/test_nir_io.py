"""NIR export/import: exact round trips through a file, foreign (snnTorch/Norse
style) graphs, and every kind of refused graph or file."""

from __future__ import annotations

import argparse
import json
import warnings

import nir
import numpy as np
import pytest
import torch

from golden.data import load_digits_split
from golden.spikegrad import int_ann
from golden.spikegrad import weights as wf
from golden.spikegrad.nir_io import (NIRImportError, NIRImportWarning, add_nir_commands, export_nir,
                                     import_nir, save_nir)
from golden.spikegrad.params import SpikeGradParams
from spikecore.config import SpikeGradConfig

THETA = SpikeGradConfig().theta_ff


def _rha(x):
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


@pytest.fixture(scope="module")
def trained():
    return SpikeGradParams.random(SpikeGradConfig(), seed=0, input_scale=7 / 4, fraction=0.5)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


# ------------------------------------------------------------ exact round trip
def test_round_trip_through_file_is_exact(tmp_path, trained, digits):
    path = tmp_path / "net.nir"
    save_nir(trained, path)
    back = import_nir(nir.read(str(path)))
    assert back.config == trained.config
    assert back.equal(trained)
    a, b = int_ann.forward(trained, digits.test_x), int_ann.forward(back, digits.test_x)
    assert torch.equal(a.v_top, b.v_top) and torch.equal(a.prediction, b.prediction)
    assert import_nir(path).equal(trained)      # the path form too


def test_exported_graph_layout_and_metadata_survive_the_file(tmp_path, trained):
    cfg = trained.config
    save_nir(trained, tmp_path / "net.nir")
    g = nir.read(str(tmp_path / "net.nir"))
    assert [type(g.nodes[k]).__name__ for k in ("input", "fc0", "if0", "fc1", "output")] == \
        ["Input", "Affine", "IF", "Affine", "Output"]
    assert sorted(g.edges) == sorted([("input", "fc0"), ("fc0", "if0"), ("if0", "fc1"), ("fc1", "output")])
    np.testing.assert_array_equal(g.nodes["fc0"].weight.astype(np.float64) * THETA, trained.weights[0].numpy())
    np.testing.assert_array_equal(g.nodes["fc1"].bias.astype(np.float64) * THETA, trained.biases[1].numpy())
    assert np.all(g.nodes["if0"].r == 1) and np.all(g.nodes["if0"].v_threshold == 1)
    assert np.all(g.nodes["if0"].v_reset == 0)
    m = g.metadata["spikecore"]
    assert m["reset"] == "subtractive" and m["spike_values"] == "ternary"
    assert int(m["theta_ff"]) == cfg.theta_ff and int(m["weight_scale"]) == cfg.theta_ff
    assert m["residual_rounding"] == "half_away_from_zero" and bool(m["integer_weights"])
    assert g.nodes["if0"].metadata["spikecore"]["activation"] == "relu"
    np.testing.assert_array_equal(g.nodes["fc0"].metadata["spikecore"]["integer_weight"], trained.weights[0].numpy())


@pytest.mark.parametrize("cfg", [
    SpikeGradConfig(layer_sizes=(6, 5, 4, 3), activations=("linear", "relu", "linear"), bias=False),
    SpikeGradConfig(layer_sizes=(7, 3), activations=("linear",), theta_ff=1000, theta_bp=700, lanes=2),
    SpikeGradConfig(layer_sizes=(5, 4, 2), weight_bits=32, theta_ff=(1 << 30) - 3, membrane_bits=40),
])
def test_round_trip_other_configurations(tmp_path, cfg):
    p = SpikeGradParams.random(cfg, seed=5, fraction=0.9)
    save_nir(p, tmp_path / "n.nir")
    g = nir.read(str(tmp_path / "n.nir"))
    if not cfg.bias:
        assert isinstance(g.nodes["fc0"], nir.Linear)
    back = import_nir(g)
    assert back.config == cfg and back.equal(p)


def test_overrides_apply_to_an_exact_import(trained):
    back = import_nir(export_nir(trained), config_overrides={"lanes": 4})
    assert back.config == trained.config.replace(lanes=4) and back.equal(trained)


def test_graph_without_metadata_still_imports_to_the_same_integers(tmp_path, trained):
    """Other tools drop spikecore's metadata; the float units alone give the same ReLU network."""
    g = export_nir(trained)
    g.metadata = {}
    for node in g.nodes.values():
        node.metadata = {}
    nir.write(str(tmp_path / "plain.nir"), g)
    back = import_nir(tmp_path / "plain.nir")
    assert back.config == trained.config and back.equal(trained)


# ------------------------------------------------------------- foreign graphs
def snntorch_like(weights, biases, beta=1.0, threshold=1.0, dt=1e-4):
    """A graph exactly as snnTorch 1.0.0's export_to_nir writes nn.Linear + snn.Leaky
    (per-neuron beta/threshold): nodes '0', '1', ..., float32, edges in no order."""
    nodes = {"input": nir.Input(input_type={"input": np.array([weights[0].shape[1]])})}
    edges, prev = [], "input"
    k = 0
    for w, b in zip(weights, biases):
        n = w.shape[0]
        nodes[str(k)] = nir.Affine(weight=np.asarray(w, np.float32), bias=np.asarray(b, np.float32))
        with np.errstate(divide="ignore"):
            bt = np.full(n, beta, np.float32)
            tau = dt / (1 - bt)
            r = tau / dt
        nodes[str(k + 1)] = nir.LIF(tau=tau, r=r, v_leak=np.zeros(n, np.float32),
                                    v_threshold=np.full(n, threshold, np.float32), v_reset=np.zeros(n, np.float32))
        edges += [(prev, str(k)), (str(k), str(k + 1))]
        prev, k = str(k + 1), k + 2
    nodes["output"] = nir.Output(output_type={"output": np.array([weights[-1].shape[0]])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges[::-1], type_check=False)


def _rand_layers(sizes, seed=0, scale=0.3):
    g = np.random.default_rng(seed)
    ws = [g.uniform(-scale, scale, (o, i)).astype(np.float32) for i, o in zip(sizes[:-1], sizes[1:])]
    bs = [g.uniform(-0.1, 0.1, o).astype(np.float32) for o in sizes[1:]]
    return ws, bs


def test_snntorch_style_if_chain_imports_with_expected_integers(tmp_path):
    ws, bs = _rand_layers([8, 6, 4])
    nir.write(str(tmp_path / "s.nir"), snntorch_like(ws, bs, beta=1.0, threshold=0.5))
    p = import_nir(tmp_path / "s.nir")
    assert p.config.layer_sizes == (8, 6, 4) and p.config.activations == ("relu", "linear") and p.config.bias
    for l in range(2):
        np.testing.assert_array_equal(p.weights[l].numpy(), _rha(ws[l].astype(np.float64) / 0.5 * THETA))
        np.testing.assert_array_equal(p.biases[l].numpy(), _rha(bs[l].astype(np.float64) / 0.5 * THETA))


def test_leaky_lif_is_refused_naming_the_node_unless_allowed():
    ws, bs = _rand_layers([8, 6, 4])
    g = snntorch_like(ws, bs, beta=0.9)
    with pytest.raises(NIRImportError) as e:
        import_nir(g)
    msg = str(e.value)
    for word in ("'1'", "LIF", "leak", "beta", "0.9", "allow_leak"):
        assert word in msg
    with pytest.warns(NIRImportWarning, match="leak dropped"):
        p = import_nir(g, allow_leak=True)
    # snnTorch's r = tau/dt makes the input gain r*dt/tau = 1 (up to float32 noise, snapped)
    np.testing.assert_array_equal(p.weights[0].numpy(), _rha(ws[0].astype(np.float64) * THETA))


def test_norse_style_if_graph_with_dt_and_readout_neuron():
    """Norse writes Linear as Affine (zero bias when absent) and IAFCell as IF(r=1)."""
    ws, _ = _rand_layers([5, 4, 3], seed=2, scale=0.2)
    zeros = [np.zeros(w.shape[0], np.float32) for w in ws]
    nodes = {"input": nir.Input(input_type={"input": np.array([5])}),
             "0": nir.Affine(weight=ws[0], bias=zeros[0]),
             "1": nir.IF(r=np.ones(4, np.float32), v_threshold=np.full(4, 0.25, np.float32)),
             "2": nir.Affine(weight=ws[1], bias=zeros[1]),
             "3": nir.LIF(tau=np.full(3, np.inf), r=np.full(3, np.inf), v_leak=np.zeros(3),
                          v_threshold=np.full(3, 2.0)),
             "output": nir.Output(output_type={"output": np.array([3])})}
    g = nir.NIRGraph(nodes=nodes, edges=[("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "output")],
                     type_check=False)
    p = import_nir(g)
    assert not p.config.bias
    np.testing.assert_array_equal(p.weights[0].numpy(), _rha(ws[0].astype(np.float64) * 4 * THETA))
    np.testing.assert_array_equal(p.weights[1].numpy(), _rha(ws[1].astype(np.float64) / 2 * THETA))


def test_foreign_import_overrides_and_bias_steps():
    ws, bs = _rand_layers([4, 3, 2], seed=3, scale=0.2)
    p = import_nir(snntorch_like(ws, bs), config_overrides={"theta_ff": 1 << 12, "theta_bp": 1 << 12},
                   bias_steps=3)
    assert p.config.theta_ff == 1 << 12
    np.testing.assert_array_equal(p.biases[0].numpy(), _rha(bs[0].astype(np.float64) * 3 * (1 << 12)))
    with pytest.raises(NIRImportError, match="layer_sizes"):
        import_nir(snntorch_like(ws, bs), config_overrides={"layer_sizes": [4, 5, 2]})
    with pytest.raises(NIRImportError, match="theta_ff"):
        import_nir(snntorch_like(ws, bs), config_overrides={"theta_ff": 1})


def test_real_snntorch_export_imports(tmp_path):
    """snnTorch 1.0.0 + nirtorch 2.6 (installed with --no-deps); skipped when absent."""
    snn = pytest.importorskip("snntorch")
    export_to_nir = pytest.importorskip("snntorch.export_nir").export_to_nir
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 5), snn.Leaky(beta=torch.ones(5), threshold=torch.ones(5), init_hidden=True),
        torch.nn.Linear(5, 3), snn.Leaky(beta=torch.ones(3), threshold=torch.ones(3), init_hidden=True, output=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = export_to_nir(net, torch.randn(8))
    nir.write(str(tmp_path / "snn.nir"), g)
    p = import_nir(tmp_path / "snn.nir")
    w = net[0].weight.detach().double().numpy()
    np.testing.assert_array_equal(p.weights[0].numpy(), _rha(w * THETA))


def test_batch_dimension_of_one_is_accepted():
    g = _chain_graph(("fc", _aff(2, 4)), input_shape=(1, 4))
    g.nodes["output"] = nir.Output(output_type={"output": np.array([1, 2])})
    assert import_nir(g).config.layer_sizes == (4, 2)


# ------------------------------------------------------------------ refusals
def _chain_graph(*named, input_shape=(4,)):
    nodes = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    order = ["input"]
    for name, node in named:
        nodes[name] = node
        order.append(name)
    nodes["output"] = nir.Output(output_type={"output": np.array([2])})
    order.append("output")
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), type_check=False)


def _aff(o, i, v=0.1):
    return nir.Affine(weight=np.full((o, i), v, np.float32), bias=np.zeros(o, np.float32))


def _if(n, **kw):
    return nir.IF(r=np.ones(n), v_threshold=np.ones(n), **kw)


def _bad_graphs():
    yield "unsupported", _chain_graph(("fc", _aff(3, 4)), ("thr", nir.Threshold(threshold=np.ones(3))),
                                      ("fc2", _aff(2, 3))), ["'thr'", "Threshold", "not supported"]
    yield "flatten", _chain_graph(("flat", nir.Flatten(input_type={"input": np.array([4])})), ("fc", _aff(2, 4))), \
        ["'flat'", "Flatten"]
    yield "delay", _chain_graph(("fc", _aff(2, 4)), ("d", nir.Delay(delay=np.ones(2)))), ["'d'", "Delay"]
    yield "sumpool", _chain_graph(("p", nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                                      padding=np.array([0, 0]))), ("fc", _aff(2, 4))), \
        ["'p'", "SumPool2d"]
    yield "cubalif", _chain_graph(("fc", _aff(3, 4)), ("c", nir.CubaLIF(
        tau_syn=np.ones(3), tau_mem=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))),
        ("fc2", _aff(2, 3))), ["'c'", "CubaLIF", "tau_syn"]
    yield "shape", _chain_graph(("fc", _aff(3, 4)), ("n", _if(3)), ("fc2", _aff(2, 5))), \
        ["'n'", "'fc2'", "3 values", "(2, 5)"]
    yield "neuron_shape", _chain_graph(("fc", _aff(3, 4)), ("n", _if(5)), ("fc2", _aff(2, 3))), \
        ["'n'", "(5,)", "3 values"]
    yield "output_shape", _chain_graph(("fc", _aff(3, 4))), ["'fc'", "'output'", "(2,)"]
    yield "multidim", _chain_graph(("fc", _aff(2, 4)), input_shape=(2, 4)), ["'input'", "(2, 4)", "multi-dimensional"]
    yield "range", _chain_graph(("fc", _aff(3, 4)), ("n", _if(3)),
                                ("fc2", nir.Affine(weight=np.array([[0.1, 0.2, 0.3], [0.1, 1.5, 0.1]]),
                                                   bias=np.zeros(2)))), \
        ["'fc2'", "weight[1, 1]", "1.5", "49152", "[-32767, 32767]"]
    yield "nan", _chain_graph(("fc", nir.Affine(weight=np.array([[0.1, np.nan, 0, 0], [0, 0, 0, 0]]),
                                                bias=np.zeros(2)))), ["'fc'", "weight[0, 1]", "nan"]
    yield "reset", _chain_graph(("fc", _aff(3, 4)), ("n", _if(3, v_reset=np.full(3, 0.5))), ("fc2", _aff(2, 3))), \
        ["'n'", "v_reset", "0.5"]
    yield "threshold", _chain_graph(("fc", _aff(3, 4)), ("n", nir.IF(r=np.ones(3), v_threshold=np.zeros(3))),
                                    ("fc2", _aff(2, 3))), ["'n'", "v_threshold", "positive"]
    yield "v_leak", _chain_graph(("fc", _aff(3, 4)), ("n", nir.LIF(tau=np.full(3, np.inf), r=np.full(3, np.inf),
                                                                   v_leak=np.ones(3), v_threshold=np.ones(3))),
                                 ("fc2", _aff(2, 3))), ["'n'", "v_leak"]
    yield "two_synapses", _chain_graph(("fc", _aff(3, 4)), ("fc2", _aff(2, 3))), ["'fc2'", "'fc'", "directly"]
    yield "hidden_li", _chain_graph(("fc", _aff(3, 4)), ("n", nir.I(r=np.ones(3))), ("fc2", _aff(2, 3))), \
        ["'n'", "non-spiking", "hidden"]
    yield "neuron_first", _chain_graph(("n", _if(4)), ("fc", _aff(2, 4))), ["'n'", "must follow a synapse"]
    sub = nir.NIRGraph(nodes={"i": nir.Input(input_type={"input": np.array([3])}), "l": _if(3),
                              "o": nir.Output(output_type={"output": np.array([3])})},
                       edges=[("i", "l"), ("l", "o")], type_check=False)
    yield "subgraph", _chain_graph(("fc", _aff(3, 4)), ("rnn", sub), ("fc2", _aff(2, 3))), ["'rnn'", "subgraph"]
    g = _chain_graph(("fc", _aff(2, 4)))
    g.nodes["fc_b"] = _aff(2, 4)
    g.edges.append(("input", "fc_b"))
    yield "branch", g, ["'input'", "branching", "fc_b"]
    g = _chain_graph(("fc", _aff(3, 4)), ("n", _if(3)), ("fc2", _aff(2, 3)))
    g.nodes["rec"] = nir.Linear(weight=np.eye(3))
    g.edges += [("n", "rec"), ("rec", "fc")]
    yield "recurrent", g, ["recurrent"]
    g = _chain_graph(("fc", _aff(2, 4)))
    g.nodes["stray"] = _if(2)
    yield "disconnected", g, ["'stray'", "not on the chain"]


@pytest.mark.parametrize("graph, words", [pytest.param(g, w, id=i) for i, g, w in _bad_graphs()])
def test_unsupported_graphs_are_refused_naming_the_problem(graph, words):
    with pytest.raises(NIRImportError) as e:
        import_nir(graph)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_bad_files_are_refused(tmp_path, trained):
    good = tmp_path / "good.nir"
    save_nir(trained, good)
    data = good.read_bytes()
    cases = {"truncated.nir": data[: len(data) // 2], "garbage.nir": b"not a NIR file at all\n" * 10,
             "empty.nir": b""}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(NIRImportError, match="not a readable NIR file") as e:
            import_nir(tmp_path / name)
        assert name in str(e.value)
    with pytest.raises(NIRImportError, match="no such NIR file"):
        import_nir(tmp_path / "missing.nir")
    import h5py
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=np.arange(3))
    with pytest.raises(NIRImportError, match="other.h5"):
        import_nir(tmp_path / "other.h5")


def _edited(trained, fn):
    g = export_nir(trained)
    fn(g)
    return g


@pytest.mark.parametrize("edit, words", [
    (lambda g: g.nodes["fc0"].weight.__setitem__((2, 3), 0.5), ["'fc0'", "weight[2, 3]", "file edited"]),
    (lambda g: g.nodes["fc1"].metadata["spikecore"]["integer_bias"].__setitem__(0, 7), ["bias[0]"]),
    (lambda g: g.metadata["spikecore"].__setitem__("checksum", "0" * 64), ["checksum"]),
    (lambda g: g.metadata["spikecore"].__setitem__("format_version", 9), ["format_version", "9"]),
    (lambda g: g.metadata["spikecore"]["config"].__setitem__("lanes", 3), ["lanes", "power of two"]),
    (lambda g: g.nodes["fc0"].metadata.clear(), ["'fc0'", "integer_weight"]),
])
def test_edited_spikecore_graphs_are_refused(trained, edit, words):
    g = _edited(trained, edit)
    with pytest.raises(NIRImportError) as e:
        import_nir(g)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


# ------------------------------------------------------------------------ CLI
def test_cli_commands_round_trip(tmp_path, trained, capsys):
    p = argparse.ArgumentParser()
    add_nir_commands(p.add_subparsers(dest="command", required=True))
    wf.save(trained, tmp_path / "w.json")
    args = p.parse_args(["nir", "export", str(tmp_path / "w.json"), "-o", str(tmp_path / "g.nir")])
    assert args.func(args) == 0
    args = p.parse_args(["nir", "import", str(tmp_path / "g.nir"), "-o", str(tmp_path / "w2.json"),
                         "--set", "lanes=2"])
    assert args.func(args) == 0
    back = wf.load(tmp_path / "w2.json")
    assert back.equal(trained) and back.config == trained.config.replace(lanes=2)
    assert json.loads((tmp_path / "w2.json").read_text())["config"]["lanes"] == 2
    ws, bs = _rand_layers([4, 3, 2])
    nir.write(str(tmp_path / "leaky.nir"), snntorch_like(ws, bs, beta=0.5))
    args = p.parse_args(["nir", "import", str(tmp_path / "leaky.nir"), "-o", str(tmp_path / "w3.json"),
                         "--allow-leak"])
    assert args.func(args) == 0
    assert "leak dropped" in capsys.readouterr().out
