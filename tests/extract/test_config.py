"""`ExtractConfig`: every option of stage one declared once, so `harmcache extract` and
`harmcache.extract()` share each default, help text and check."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from harmcache.cli.main import app
from typer.testing import CliRunner

from harmcache.errors import UsageError
from harmcache.extract.config import ExtractConfig, resolve_device
from harmcache.options import default_of, help_of


def extract_command_params() -> dict:
    command = typer.main.get_command(app).commands["extract"]
    return {param.name: param for param in command.params}


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(ExtractConfig)])
def test_every_config_field_is_an_extract_option_with_its_default_and_help(field):
    param = extract_command_params()[field]
    assert param.default == default_of(ExtractConfig, field)
    assert param.help == help_of(ExtractConfig, field)
    assert f"--{field.replace('_', '-')}" in param.opts


def test_the_command_has_no_extraction_option_beside_the_config():
    fields = {f.name for f in dataclasses.fields(ExtractConfig)}
    others = {"inputs", "out", "json_out", "strict", "verbose"}  # what the command adds
    assert set(extract_command_params()) - fields == others


def test_defaults_resolve_to_the_documented_settings():
    config = ExtractConfig()
    assert config.extractors == ("yolo", "clip", "slowfast", "pdq")
    settings = config.settings("cpu")
    assert settings.pdq_fps == 1.0 and ExtractConfig(pdq_fps=2.5).settings("cpu").pdq_fps == 2.5
    assert (settings.frames, settings.windows, settings.fps, settings.window_every) == (
        32, 4, None, None,
    )  # fmt: skip
    assert settings.cpu_threads >= 1 and config.settings("cuda").cpu_threads == 0
    assert (config.gpus("cuda"), config.gpus("cpu")) == (1.0, 0.0)
    assert ExtractConfig(gpus_per_worker=0.5).gpus("cuda") == 0.5


@pytest.mark.parametrize("given", ["clip, yolo", ["clip", "yolo"], ("clip", "yolo")])
def test_extractors_are_a_list_or_comma_separated(given):
    assert ExtractConfig(extractors=given).extractors == ("clip", "yolo")


@pytest.mark.parametrize(
    "options,library,flag",
    [
        (dict(frames=0), "frames must be at least 1, got 0", "--frames must be at least 1, got 0"),
        (dict(workers=-1), "workers must be 0 or more, got -1", "--workers must be 0 or more"),
        (dict(shard_size=0), "shard_size must be at least 1, got 0", "--shard-size must be"),
        (dict(window_every=-1.0), "window_every must be above 0 seconds, got -1", None),
        (dict(pdq_fps=0.0), "pdq_fps must be above 0, got 0", "--pdq-fps must be above 0"),
        (dict(yolo_imgsz=100), "yolo_imgsz must be a multiple of 32, got 100", None),
        (dict(tta="rotate"), "tta must be 'flip' if given, got 'rotate'", "--tta must be 'flip'"),
        (dict(engine="spark"), "engine must be one of local | ray, got 'spark'", "--engine must"),
        (dict(gpus_per_worker=-1.0), "gpus_per_worker must be 0 or more, got -1", None),
        (dict(device="tpu"), "device must be auto, cpu or cuda[:N], got 'tpu'", "--device must"),
        (
            dict(extractors=","),
            "no extractors chosen: use extractors yolo,clip,slowfast",
            "no extractors chosen: use --extractors yolo,clip,slowfast",
        ),
    ],
)
def test_a_bad_option_names_itself_and_the_cli_says_its_flag(options, library, flag):
    with pytest.raises(UsageError) as raised:
        ExtractConfig(**options)
    assert str(raised.value) == library
    (name,) = options
    assert raised.value.parameter == name
    expected = flag or library.replace(name, "--" + name.replace("_", "-"), 1)
    assert raised.value.as_flag().startswith(expected)


@pytest.mark.parametrize(
    "options,message",
    [
        (dict(frames=8, fps=2.0), "^--frames and --fps exclude each other: pass one$"),
        (dict(windows=2, window_every=1.0), "^--windows and --window-every exclude each other"),
        (dict(weights_dir="w", random_init=True), "^--weights-dir and --random-init exclude"),
        (dict(slowfast_crop=288), "^SlowFast short side 256 is smaller than its crop 288"),
        (dict(extractors="clip,clip"), "^an extractor is named twice in clip,clip$"),
        (dict(extractors="clip,sound"), "^unknown extractor 'sound'; choose from "),
    ],
)
def test_options_that_clash_or_name_nothing_known_are_refused(options, message):
    with pytest.raises(UsageError, match=message):
        ExtractConfig(**options)


def test_python_takes_a_config_or_its_fields_as_keywords(make_video, tmp_path, monkeypatch):
    from harmcache.extract import api

    seen = {}

    def fake_run(inputs, out, extractors, **kwargs):
        seen.update(kwargs, extractors=[ex.name for ex in extractors])
        seen["settings"] = extractors[0].settings
        return "summary"

    monkeypatch.setattr(api, "run_extraction", fake_run)
    config = ExtractConfig(extractors="clip", random_init=True, device="cpu", shard_size=3)
    assert api.extract([], tmp_path / "a", config, frames=5) == "summary"
    assert seen["extractors"] == ["clip"] and seen["settings"].frames == 5
    assert (seen["shard_size"], seen["workers"], seen["engine"]) == (3, 1, "local")
    api.extract([], tmp_path / "b", extractors=["yolo"], random_init=True, device="cpu")
    assert seen["extractors"] == ["yolo"] and seen["shard_size"] == 8
    with pytest.raises(TypeError, match="nope"):
        api.extract([], tmp_path / "c", nope=1)


def test_the_library_says_the_option_and_the_command_says_the_flag(make_video, tmp_path):
    import harmcache

    video, _ = make_video("v.mp4")
    with pytest.raises(UsageError, match=r"^batch_size must be at least 1, got 0$"):
        harmcache.extract([video], tmp_path / "cache", random_init=True, batch_size=0)
    result = CliRunner().invoke(
        app, ["extract", str(video), "--out", str(tmp_path / "c"), "--batch-size", "0"]
    )
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --batch-size must be at least 1, got 0"


def test_an_unknown_device_is_refused_before_anything_is_read():
    with pytest.raises(UsageError, match=r"^device must be auto, cpu or cuda\[:N\], got 'tpu'$"):
        resolve_device("tpu")
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1", "ray") == "cuda:1"
