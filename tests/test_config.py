"""The config as Snakemake's --config hands it over: nested values arrive as strings."""

from cineflow.config import load_schema, resolve, typed_scalars


def test_command_line_strings_become_what_the_schema_wants():
    """`--config predict='{input: dir, gradcam: True}'` gives {'gradcam': 'True'}: YAML's base loader keeps
    scalars as text. Booleans in either spelling, numbers, nulls, lists of numbers and models' keys are
    parsed; strings the schema allows (a partition named '8', an enum, 'auto') stay strings."""
    config = {"predict": {"input": "new videos", "gradcam": "True"},
              "cluster": {"cpus_per_gpu": "8", "account": "null", "gpu_partition": "8", "gpu_request": "gres"},
              "cache": {"crop": ["0", "4", "10", "12"], "fps": "12.5"},
              "resources": {"loader_workers": "auto", "train_threads": "3"},
              "models": {"m": {"arch": "tiny3d", "epochs": "2", "pretrained": "false"}},
              "evaluate": {"eval_clips": "all"}}
    typed_scalars(config, load_schema())
    assert config["predict"] == {"input": "new videos", "gradcam": True}
    assert config["cluster"] == {"cpus_per_gpu": 8, "account": None, "gpu_partition": "8", "gpu_request": "gres"}
    assert config["cache"] == {"crop": [0, 4, 10, 12], "fps": 12.5}
    assert config["resources"] == {"loader_workers": "auto", "train_threads": 3}
    assert config["models"]["m"] == {"arch": "tiny3d", "epochs": 2, "pretrained": False}
    assert config["evaluate"] == {"eval_clips": "all"}
    resolve(config)  # and the result is a valid config
    lower = {"predict": {"gradcam": "true"}, "cluster": {"cpus_per_gpu": "eight"}}
    typed_scalars(lower, load_schema())
    assert lower == {"predict": {"gradcam": True}, "cluster": {"cpus_per_gpu": "eight"}}  # the schema names it
