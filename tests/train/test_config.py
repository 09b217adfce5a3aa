"""The stage-two configs are the one source of their commands' options: every field is an
option with the same default and help, the library's signatures agree, head-specific options
are checked against the chosen head's own settings, and errors name the parameter (the library
its name, the command line its flag)."""

from __future__ import annotations

import inspect
import json

import pytest
from harmcache.cli.main import app
from typer.testing import CliRunner

import harmcache
from harmcache.calibration import METHODS
from harmcache.errors import UsageError
from harmcache.heads.base import HEADS, head_class, setting_names
from harmcache.options import default_of
from harmcache.train.config import CALIBRATIONS, EvaluateConfig, PredictConfig, TrainConfig
from tests.options import assert_options_match, command_params
from tests.synthetic_cache import build

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    "command, config",
    [("train", TrainConfig), ("evaluate", EvaluateConfig), ("predict", PredictConfig)],
)
def test_every_config_field_is_an_option_with_its_default_and_help(command, config):
    assert_options_match(app, command, config)


@pytest.mark.parametrize(
    "function, config", [("evaluate", EvaluateConfig), ("predict", PredictConfig)]
)
def test_the_library_signature_has_the_config_defaults(function, config):
    signature = inspect.signature(getattr(harmcache, function)).parameters
    for name in config.__dataclass_fields__:
        assert signature[name].default == default_of(config, name), (function, name)


def test_the_head_option_lists_every_registered_head():
    shown = command_params(app, "train")["head"].help
    assert shown == " | ".join(HEADS) + "." and "mil" in shown


def test_the_calibrate_choices_are_the_calibration_methods():
    assert CALIBRATIONS == (*METHODS, "none")


@pytest.mark.parametrize("head", sorted(HEADS))
def test_head_options_apply_to_every_head_that_has_the_setting(head):
    known = set(setting_names(head_class(head)))
    values = {"epochs": 3, "batch_size": 2, "loss": "focal"}
    for name, value in values.items():
        config = TrainConfig(head=head, **{name: value})
        if name in known:
            assert config.head_settings()[name] == value
        else:
            with pytest.raises(UsageError, match=rf"^{name} is not a setting of the {head} head"):
                config.head_settings()


def test_the_mil_head_takes_epochs_and_batch_size():
    settings = TrainConfig(head="mil", epochs=5, batch_size=2, seed=4).head_settings()
    assert settings == {"seed": 4, "epochs": 5, "batch_size": 2}


def test_a_head_option_and_head_params_may_not_disagree():
    with pytest.raises(UsageError, match=r"^epochs 3 and head_params epochs=4 differ"):
        TrainConfig(head="mil", epochs=3, head_params={"epochs": 4}).head_settings()
    same = TrainConfig(head="mil", epochs=3, head_params={"epochs": 3})
    assert same.head_settings()["epochs"] == 3


@pytest.mark.parametrize(
    "settings, name, message",
    [
        ({"val_fraction": 1.5}, "val_fraction", "must be above 0 and below 1, got 1.5"),
        ({"test_fraction": -0.1}, "test_fraction", "must be at least 0 and below 1, got -0.1"),
        ({"epochs": 0}, "epochs", "must be at least 1, got 0"),
        ({"calibrate": "platt"}, "calibrate", "must be one of isotonic, sigmoid, none, got"),
    ],
)
def test_errors_name_the_setting_in_python_and_the_flag_on_the_command_line(
    settings, name, message
):
    with pytest.raises(UsageError) as refused:
        TrainConfig(**settings)
    assert refused.value.parameter == name
    assert str(refused.value).startswith(f"{name} {message}")
    assert refused.value.as_flag().startswith(f"--{name.replace('_', '-')} {message}")


def test_evaluate_and_predict_configs_check_their_settings():
    with pytest.raises(UsageError, match=r"^subset must be val or test, got 'nope'"):
        EvaluateConfig(subset="nope")
    with pytest.raises(UsageError, match=r"^subset and labels exclude each other"):
        EvaluateConfig(subset="val", labels="labels.csv")
    with pytest.raises(UsageError, match=r"^segments must be at least 0, got -1"):
        PredictConfig(segments=-1)


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    return build(tmp_path_factory.mktemp("config"), 40, signal=3.0)


def test_train_takes_a_config_or_keywords(syn, tmp_path):
    quiet = {"on_join": lambda report: None, "on_epoch": lambda report: None}
    config = TrainConfig(head="logreg", seed=2, test_fraction=0.2)
    by_config = harmcache.train(syn.cache.root, syn.labels_csv, config, tmp_path / "a", **quiet)
    by_keywords = harmcache.train(
        syn.cache.root, syn.labels_csv, "logreg", tmp_path / "b", seed=2, test_fraction=0.2, **quiet
    )
    assert by_config.metrics["test"] == by_keywords.metrics["test"]
    assert (tmp_path / "a" / "split.csv").read_text() == (tmp_path / "b" / "split.csv").read_text()
    assert by_config.lines()[-1].startswith(f"run written to {tmp_path / 'a'}")
    with pytest.raises(TypeError, match="not both"):
        harmcache.train(syn.cache.root, syn.labels_csv, config, tmp_path / "c", seed=1)
    with pytest.raises(UsageError, match=r"^epochs is not a setting of the logreg head"):
        harmcache.train(syn.cache.root, syn.labels_csv, "logreg", tmp_path / "d", epochs=2)


def test_mil_trains_with_epochs_and_batch_size_from_the_command_line(syn, tmp_path):
    out = tmp_path / "mil"
    result = invoke("train", "--cache", syn.cache.root, "--labels", syn.labels_csv, "--head",
                    "mil", "--out", out, "--epochs", "2", "--batch-size", "8", "--param",
                    "d_model=16")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "epoch 2/2" in result.stderr
    saved = json.loads((out / "config.json").read_text())["head_params"]
    assert saved["epochs"] == 2 and saved["batch_size"] == 8 and saved["d_model"] == 16


def test_a_head_without_the_setting_refuses_its_option_by_flag(syn, tmp_path):
    result = invoke("train", "--cache", syn.cache.root, "--labels", syn.labels_csv, "--head",
                    "mil", "--out", tmp_path / "r", "--loss", "focal")  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --loss is not a setting of the mil head (its settings:")


def test_evaluate_checks_its_options_from_python_too(tmp_path):
    """The command's checks run before the run is even opened, as `harmcache evaluate` does."""
    from harmcache import evaluate

    with pytest.raises(UsageError, match=r"^subset must be val or test, got 'nope'$"):
        evaluate(tmp_path / "no-run", subset="nope")
